# One image for every server role (worker, beat, web, flower) and for volunteers.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -e ".[server]" && useradd --create-home battletracker
USER battletracker
ENV PYTHONUNBUFFERED=1
CMD ["battletracker", "--help"]

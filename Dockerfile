# One image for every server role (migrate, worker, beat, web, flower, kibana-setup) and
# for the compose file's fetch node. Dependencies are installed at the exact versions of
# constraints/server.txt, so the image and CI run the same releases.
FROM python:3.11.10-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# the dependency layer first: it changes only when the constraints do
COPY constraints/server.txt constraints/server.txt
COPY setup.cfg pyproject.toml README.md ./
RUN mkdir battletracker && touch battletracker/__init__.py \
    && pip install -c constraints/server.txt '.[server]' \
    && pip uninstall -y battletracker && rm -rf battletracker build

COPY . /app
# from a checkout (-e): the migrations in alembic/ and docker-compose.yml stay beside the code
RUN pip install --no-deps -e '.[server]' \
    && useradd --create-home --uid 10001 battletracker \
    && install -d -o battletracker -g battletracker /var/lib/battletracker /var/lib/battletracker/node
USER battletracker
CMD ["battletracker", "--help"]

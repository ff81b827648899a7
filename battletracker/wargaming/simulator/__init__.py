"""A deterministic, strict simulator of the console API's ``account/info`` (and sign-in).

Use it in-process through ``Simulator(...).transport()`` (an ``httpx.MockTransport``) or
over real HTTP through ``serve(sim)``; the behaviour is the same, except that only the
HTTP server sees client IPs and really closes sockets. Example::

    sim = Simulator(Population(seed=7), keys={"k": 10.0})
    with httpx.Client(transport=sim.transport(), base_url=BASE_URL) as client:
        client.get("account/info/", params={"application_id": "k", "account_id": "5000"})
"""

from __future__ import annotations

from .faults import FAULT_KINDS as FAULT_KINDS
from .faults import FaultPlan as FaultPlan
from .faults import Faults as Faults
from .handler import API_PREFIX as API_PREFIX
from .handler import FIELDS_LIMIT_MESSAGE as FIELDS_LIMIT_MESSAGE
from .handler import MAX_IDS as MAX_IDS
from .handler import Simulator as Simulator
from .handler import SimulatorTransport as SimulatorTransport
from .population import PS_MIN as PS_MIN
from .population import XBOX_MIN as XBOX_MIN
from .population import Population as Population
from .replies import Reply as Reply
from .server import RunningSimulator as RunningSimulator
from .server import run_forever as run_forever
from .server import serve as serve
from .template import TemplatePopulation as TemplatePopulation

__all__ = [
    "API_PREFIX",
    "BASE_URL",
    "FAULT_KINDS",
    "FIELDS_LIMIT_MESSAGE",
    "MAX_IDS",
    "PS_MIN",
    "XBOX_MIN",
    "FaultPlan",
    "Faults",
    "Population",
    "Reply",
    "RunningSimulator",
    "Simulator",
    "SimulatorTransport",
    "TemplatePopulation",
    "run_forever",
    "serve",
]

#: A base URL for in-process use with ``Simulator.transport()`` (the host is never resolved).
BASE_URL = "http://simulator.invalid" + API_PREFIX


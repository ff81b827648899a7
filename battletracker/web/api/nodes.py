"""The nodes' HTTP API: register, lease (heartbeat), report a key; public volunteer list.

A node authenticates with ``Authorization: Bearer <node id>.<secret>`` over HTTPS; the
server keeps only the secret's hash. The routes are thin: each calls the node services
in one transaction and maps the node domain's errors to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ...nodes.interfaces import LeaseError, NodeAuthError, NodeError, NodeNotAllowed, UnknownKey
from ...nodes.models import Node
from ...nodes.services import NodeService, node_service
from ..deps import DbSession, reader, state_of
from .params import API_PREFIX

__all__ = ["public_router", "router", "trust_by_name"]

router = APIRouter(prefix=API_PREFIX + "/nodes", tags=["nodes"])
public_router = APIRouter(prefix=API_PREFIX, tags=["nodes"])

_Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")]
#: A version as ``battletracker.release`` writes them (PEP 440 characters only).
_Version = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z.+!_-]+$")]
#: Free text a node sends: no control characters (PostgreSQL refuses NUL in text).
_Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class RegisterIn(BaseModel):
    invite: Annotated[str | None, Field(max_length=100, pattern=r"^[!-~]+$")] = None
    name: _Name | None = None
    version: _Version | None = None


class RegisterOut(BaseModel):
    node_id: int
    secret: str
    state: str


class LeaseIn(BaseModel):
    #: renew this lease (a heartbeat) instead of taking a new one
    lease_id: Annotated[int | None, Field(ge=1, lt=2**31)] = None
    version: _Version | None = None


class KeyReportIn(BaseModel):
    app_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    reason: _Text


class VolunteerOut(BaseModel):
    name: str
    chunks: int
    accounts: int
    trust: float
    state: str


def _write_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed when the route returns and before the answer
    is sent (``scope="function"``): a node is never told of a lease or a share the database
    does not hold yet, or will not hold if the commit fails."""
    with state_of(request).sessions.begin() as session:
        yield session


WriteSession = Annotated[Session, Depends(_write_session, scope="function")]


def _service(request: Request, session: WriteSession) -> NodeService:
    state = state_of(request)
    broker = getattr(request.app.state, "broker_admin", None)
    return node_service(session, state.settings, broker)


Service = Annotated[NodeService, Depends(_service)]


def _node(service: Service, authorization: Annotated[str | None, Header()] = None,
          x_node_version: Annotated[str | None, Header(max_length=32)] = None) -> Node:  # fmt: skip
    scheme, _, credential = (authorization or "").partition(" ")
    node_text, _, secret = credential.partition(".")
    if scheme.lower() != "bearer" or not node_text.isdigit() or not secret or len(node_text) > 9:
        raise HTTPException(401, "node credentials required (Bearer <id>.<secret>)",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    try:
        return service.authenticate(int(node_text), secret, x_node_version)
    except NodeAuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


AuthNode = Annotated[Node, Depends(_node)]


def _http(exc: NodeError) -> HTTPException:
    if isinstance(exc, NodeAuthError):
        return HTTPException(401, str(exc))
    if isinstance(exc, NodeNotAllowed):
        return HTTPException(403, str(exc))
    if isinstance(exc, LeaseError | UnknownKey):
        return HTTPException(409, str(exc))
    return HTTPException(503, str(exc))


@router.post("/register", response_model=RegisterOut, status_code=201)
def register(body: RegisterIn, service: Service) -> RegisterOut:
    """Enrol a node; with a valid invite it is approved at once, else it waits."""
    try:
        node, secret = service.register(invite=body.invite, name=body.name, version=body.version)
    except NodeError as exc:
        raise _http(exc) from None
    return RegisterOut(node_id=node.id, secret=secret, state=node.state.value)


@router.post("/lease")
def lease(body: LeaseIn, node: AuthNode, service: Service) -> dict[str, Any]:
    """A lease (or its renewal): broker URL, keys and rates, expiry, required version."""
    try:
        return service.lease(node, renew=body.lease_id).as_json()
    except NodeError as exc:
        raise _http(exc) from None


@router.post("/key-report", status_code=204)
def key_report(body: KeyReportIn, node: AuthNode, service: Service) -> None:
    """The node found a key unusable: recorded for the operator (table and metric)."""
    service.report_key(node, body.app_id, body.reason)


class NodeSelfOut(BaseModel):
    """What the server thinks of the asking node (``battletracker node status``)."""

    node_id: int
    name: str
    state: str
    version: str | None
    last_seen: str | None
    chunks_stored: int
    accounts_stored: int
    rejected_results: int
    trust: float
    note: str | None


@router.get("/me", response_model=NodeSelfOut)
def me(node: AuthNode) -> NodeSelfOut:
    """The asking node's own record: state, credit, trust (issue 14: ``node status``)."""
    return NodeSelfOut(
        node_id=node.id, name=node.name, state=node.state.value, version=node.version,
        last_seen=node.last_seen.isoformat(timespec="seconds") if node.last_seen else None,
        chunks_stored=node.chunks_stored, accounts_stored=node.accounts_stored,
        rejected_results=node.rejected_results, trust=round(node.trust, 3), note=node.note,
    )  # fmt: skip


@public_router.get("/volunteers", response_model=list[VolunteerOut],
                   dependencies=[Depends(reader)])  # fmt: skip
def volunteers(session: DbSession) -> list[VolunteerOut]:
    """Approved and quarantined nodes by public name: credit and trust (no hostnames)."""
    from sqlalchemy import select

    from ...nodes.models import NodeState

    rows = session.execute(
        select(Node).where(Node.state.in_([NodeState.approved, NodeState.quarantined]))
        .order_by(Node.accounts_stored.desc(), Node.id)
    ).scalars()  # fmt: skip
    return [VolunteerOut(name=n.name, chunks=n.chunks_stored, accounts=n.accounts_stored,
                         trust=round(n.trust, 3), state=n.state.value) for n in rows]  # fmt: skip


def trust_by_name(session: Session) -> dict[str, float]:
    """Public name -> trust of the enrolled nodes (the lowest, if two share a name)."""
    from sqlalchemy import func, select

    rows = session.execute(select(Node.name, func.min(Node.trust)).group_by(Node.name))
    return {name: round(float(trust), 2) for name, trust in rows}

"""SIP credentials issued at an agent's sign-in, as the switch's pipeline takes them.

The digest user name of a session (``1001.ABCD...``) is not the SIP user; the pipeline
authenticates it with the session's HA1 and then acts for the user it was issued to: the
binding is the user's, the source ACL is the user's, and a user set to
``sip_credentials: session`` refuses its configured password. Credentials stop working when
revoked or expired.
"""

from __future__ import annotations

import dataclasses

from softswitch.security.acl import NetworkAcl
from softswitch.security.session_sip import SessionCredentials
from softswitch.sip.events import Address

from .network import DOMAIN, Network, Phone

WALL0 = 1_800_000_000.0  # the Network's wall clock at now = 0


def with_sessions() -> tuple[Network, SessionCredentials]:
    net = Network()
    sessions = SessionCredentials(DOMAIN)
    net.engine.sessions = sessions
    return net, sessions


def last_register_status(phone: Phone) -> tuple[int, str]:
    last = [r for r in phone.responses if r.cseq.method == "REGISTER"][-1]
    return last.status, last.reason


def session_phone(net: Network, user: str, auth_user: str, password: str, port: int) -> Phone:
    phone = net.add_phone(user, port)
    phone.password = password
    phone.auth_user = auth_user
    return phone


def test_session_credentials_register_the_user_they_were_issued_to() -> None:
    net, sessions = with_sessions()
    name, password = sessions.issue("1001", WALL0, ttl=3600)
    assert name.startswith("1001.") and name != "1001"
    alice = session_phone(net, "1001", name, password, 5071)
    alice.register()
    net.run_until(lambda: alice.registered, 5)
    assert last_register_status(alice)[0] == 200
    contacts = net.engine.registrar.lookup("1001", net.engine.wall_clock())
    assert [c.aor for c in contacts] == [f"1001@{DOMAIN}"]
    assert f"{alice.address.host}:{alice.address.port}" in contacts[0].contact

    # the same credentials cannot register another user's address of record
    other = session_phone(net, "1002", name, password, 5072)
    other.register()
    net.run(net.now + 2)
    assert last_register_status(other)[0] == 403
    assert net.engine.registrar.lookup("1002", net.engine.wall_clock()) == []


def test_revoked_or_expired_credentials_are_refused() -> None:
    net, sessions = with_sessions()
    name, password = sessions.issue("1001", WALL0, ttl=60)
    sessions.revoke(name)
    revoked = session_phone(net, "1001", name, password, 5071)
    revoked.register()
    net.run(net.now + 2)
    assert last_register_status(revoked)[0] == 401
    assert not revoked.registered

    name, password = sessions.issue("1001", WALL0, ttl=60)
    net.run(net.now + 61)  # past the session's end
    late = session_phone(net, "1001", name, password, 5073)
    late.register()
    net.run(net.now + 2)
    assert last_register_status(late)[0] == 401


def test_a_session_only_user_refuses_its_configured_password() -> None:
    net, sessions = with_sessions()
    accounts = dict(net.engine.accounts)
    accounts["1001"] = dataclasses.replace(accounts["1001"], session_only=True)
    net.engine.accounts = accounts
    static = net.add_phone("1001", 5071)  # password demo1001, digest user 1001
    static.register()
    net.run(net.now + 2)
    assert last_register_status(static)[0] == 401
    name, password = sessions.issue("1001", WALL0, ttl=3600)
    issued = session_phone(net, "1001", name, password, 5072)
    issued.register()
    net.run_until(lambda: issued.registered, 5)


def test_session_credentials_keep_the_users_source_networks() -> None:
    """A home agent's session credentials work only from the agent's allowed network (the
    VPN address): the ACL belongs to the user, not to the credentials."""
    net, sessions = with_sessions()
    accounts = dict(net.engine.accounts)
    accounts["1001"] = dataclasses.replace(accounts["1001"], acl=NetworkAcl(["10.66.0.2/32"]))
    net.engine.accounts = accounts
    name, password = sessions.issue("1001", WALL0, ttl=3600)

    outside = Phone(net, "1001", password, Address("udp", "192.0.2.50", 5080))
    outside.auth_user = name
    net.phones[outside.address] = outside  # an in-memory address: nothing leaves the process
    outside.register()
    net.run(net.now + 2)
    assert last_register_status(outside) == (403, "Source Network Not Allowed")

    inside = Phone(net, "1001", password, Address("udp", "10.66.0.2", 5060))
    inside.auth_user = name
    net.phones[inside.address] = inside
    inside.register()
    net.run_until(lambda: inside.registered, 5)


def test_a_phone_left_on_after_its_session_ended_is_refused_without_a_ban() -> None:
    """The token expired (or the agent signed out) while the softphone kept refreshing: its
    REGISTERs are refused, but the agent's address is not banned as a password guesser's
    would be; an unknown name tried as often is."""
    net, sessions = with_sessions()
    name, password = sessions.issue("1001", WALL0, ttl=3600)
    sessions.revoke(name)
    assert sessions.ended(name) and not sessions.ended("1001.notissued")
    left_on = session_phone(net, "1001", name, password, 5071)
    for _ in range(8):  # more than security.auth_failures.threshold (5)
        left_on.register()
        net.run(net.now + 1)
    statuses = {r.status for r in left_on.responses if r.cseq.method == "REGISTER"}
    assert statuses == {401}
    assert net.engine.stats["auth_failures"] == 0
    assert not net.engine.bans.is_banned(left_on.address.host, net.now)

    guesser = session_phone(net, "1001", "1001.notissued", "guess", 5072)
    for _ in range(8):
        guesser.register()
        net.run(net.now + 1)
    assert net.engine.stats["auth_failures"] >= 5
    assert net.engine.bans.is_banned(guesser.address.host, net.now)

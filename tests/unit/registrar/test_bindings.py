"""Registrar binding table (RFC 3261 §10.3 steps 6-8, RFC 5626 §6 flows)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from softswitch.registrar.bindings import (
    Binding,
    BindingError,
    BindingTable,
    ContactUpdate,
    OutOfOrderRegister,
    TableFull,
    TooManyContacts,
    default_same_contact,
)

AOR = "1001@softswitch.local"
C1 = "sip:1001@127.0.0.1:5062;transport=udp"
C2 = "sip:1001@127.0.0.1:5064;transport=udp"
C3 = "sip:1001@127.0.0.1:5066"
T0 = 1_700_000_000.0


def up(contact: str, expires: float = 3600, q: float = 1.0, **kw: object) -> ContactUpdate:
    return ContactUpdate(contact, expires, q, source="udp:127.0.0.1:5062", **kw)  # type: ignore[arg-type]


def contacts(bindings: list[Binding]) -> list[str]:
    return [b.contact for b in bindings]


# ---------------------------------------------------------------- adding and refreshing


def test_register_adds_binding_with_request_values() -> None:
    table = BindingTable(5, 100)
    result = table.apply(AOR, "call-1", 1, [up(C1, 3600, 0.7, user_agent="Phone/1")], T0)
    assert result == [
        Binding(
            aor=AOR,
            contact=C1,
            expires_at=T0 + 3600,
            q=0.7,
            call_id="call-1",
            cseq=1,
            source="udp:127.0.0.1:5062",
            user_agent="Phone/1",
        )
    ]
    assert len(table) == 1
    assert table.lookup(AOR, T0 + 10) == result
    assert table.lookup("other@softswitch.local", T0) == []
    assert result[0].expires_in(T0 + 100.5) == 3499


def test_refresh_with_higher_cseq_updates() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1, 60)], T0)
    result = table.apply(AOR, "call-1", 2, [up(C1, 120)], T0 + 30)
    assert len(result) == 1 and len(table) == 1
    assert result[0].expires_at == T0 + 150
    assert result[0].cseq == 2


@pytest.mark.parametrize("cseq", [1, 4, 5])
def test_same_call_id_with_cseq_not_higher_is_out_of_order(cseq: int) -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 5, [up(C1, 60)], T0)
    with pytest.raises(OutOfOrderRegister) as info:
        table.apply(AOR, "call-1", cseq, [up(C1, 120)], T0 + 1)
    assert info.value.status == 500
    assert isinstance(info.value, BindingError)
    assert table.lookup(AOR, T0 + 1)[0].expires_at == T0 + 60  # unchanged


def test_different_call_id_replaces_regardless_of_cseq() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 100, [up(C1, 60)], T0)
    result = table.apply(AOR, "call-2", 1, [up(C1, 90)], T0 + 1)
    assert len(result) == 1
    assert (result[0].call_id, result[0].cseq, result[0].expires_at) == ("call-2", 1, T0 + 91)


def test_expires_zero_removes() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1), up(C2)], T0)
    result = table.apply(AOR, "call-1", 2, [up(C1, 0)], T0 + 1)
    assert contacts(result) == [C2]
    assert len(table) == 1


def test_expires_zero_from_other_call_id_removes() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 9, [up(C1)], T0)
    assert table.apply(AOR, "call-2", 1, [up(C1, 0)], T0 + 1) == []
    assert len(table) == 0
    assert table.aor_count() == 0


def test_expires_zero_out_of_order_is_rejected() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 9, [up(C1)], T0)
    with pytest.raises(OutOfOrderRegister):
        table.apply(AOR, "call-1", 9, [up(C1, 0)], T0 + 1)
    assert len(table) == 1


def test_expires_zero_for_unknown_contact_is_a_no_op() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1)], T0)
    assert contacts(table.apply(AOR, "call-1", 2, [up(C2, 0)], T0 + 1)) == [C1]


def test_update_is_atomic_when_one_contact_is_out_of_order() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 5, [up(C1)], T0)
    table.apply(AOR, "call-2", 1, [up(C2)], T0)
    before = table.lookup(AOR, T0 + 1)
    with pytest.raises(OutOfOrderRegister):
        # C3 is new and C2 would be refreshed, but C1 is out of order: nothing commits.
        table.apply(AOR, "call-1", 3, [up(C3), up(C2, 10), up(C1, 10)], T0 + 1)
    assert table.lookup(AOR, T0 + 1) == before
    assert len(table) == 2


def test_same_contact_twice_in_one_request_last_wins() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1, 60)], T0)
    result = table.apply(AOR, "call-1", 2, [up(C1, 100), up(C1, 200, 0.5)], T0)
    assert len(result) == 1
    assert (result[0].expires_at, result[0].q) == (T0 + 200, 0.5)


def test_default_contact_comparison_ignores_scheme_and_host_case() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up("sip:1001@Host.Example:5060;transport=udp")], T0)
    result = table.apply(AOR, "call-1", 2, [up("SIP:1001@host.example:5060;transport=udp")], T0)
    assert contacts(result) == ["SIP:1001@host.example:5060;transport=udp"]
    # The user part stays case-sensitive (§19.1.4).
    result = table.apply(AOR, "call-1", 3, [up("sip:USER@host.example:5060;transport=udp")], T0)
    assert len(result) == 2


def test_default_same_contact() -> None:
    assert default_same_contact("sip:a@EXAMPLE.com", "sip:a@example.COM")
    assert default_same_contact("SIPS:a@[2001:DB8::1]:5061", "sips:a@[2001:db8::1]:5061")
    assert not default_same_contact("sip:A@example.com", "sip:a@example.com")
    assert not default_same_contact("sip:a@example.com;transport=TCP", "sip:a@example.com")
    assert default_same_contact("sip:example.com", "sip:EXAMPLE.com")
    assert not default_same_contact("sip:a@example.com:5060", "sip:a@example.com:5061")


def test_injected_comparator_is_used() -> None:
    def ignore_params(a: str, b: str) -> bool:
        return a.split(";")[0].lower() == b.split(";")[0].lower()

    table = BindingTable(5, 100, same_contact=ignore_params)
    table.apply(AOR, "call-1", 1, [up(C1)], T0)
    result = table.apply(AOR, "call-1", 2, [up(C1.split(";")[0])], T0)
    assert contacts(result) == [C1.split(";")[0]]
    assert table.remove(AOR, C1) is not None
    assert len(table) == 0


def test_outbound_flow_replaced_by_instance_and_reg_id() -> None:
    table = BindingTable(5, 100)
    inst = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    table.apply(AOR, "call-1", 1, [up(C1, instance_id=inst, reg_id=1)], T0)
    table.apply(AOR, "call-1", 2, [up(C2, instance_id=inst, reg_id=2)], T0)
    # Flow 1 re-registers from a new address (after a NAT rebinding): it replaces flow 1 only.
    result = table.apply(AOR, "call-1", 3, [up(C3, instance_id=inst, reg_id=1)], T0 + 5)
    assert sorted((b.contact, b.reg_id) for b in result) == [(C2, 2), (C3, 1)]


def test_two_flows_with_one_contact_uri_are_two_bindings() -> None:
    table = BindingTable(5, 100)
    inst = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"
    table.apply(AOR, "call-1", 1, [up(C1, instance_id=inst, reg_id=1)], T0)
    result = table.apply(AOR, "call-1", 2, [up(C1, instance_id=inst, reg_id=2)], T0)
    assert sorted(b.reg_id for b in result) == [1, 2]
    removed = table.remove(AOR, C1, reg_id=2)
    assert removed is not None and removed.reg_id == 2
    assert [b.reg_id for b in table.lookup(AOR, T0)] == [1]
    assert table.remove(AOR, C1, reg_id=2) is None


# ---------------------------------------------------------------- ordering


def test_lookup_orders_by_q_then_most_recent() -> None:
    table = BindingTable(10, 100)
    table.apply(AOR, "a", 1, [up(C1, q=0.5)], T0)
    table.apply(AOR, "b", 1, [up(C2, q=1.0)], T0 + 1)
    table.apply(AOR, "c", 1, [up(C3, q=0.5)], T0 + 2)
    assert contacts(table.lookup(AOR, T0 + 3)) == [C2, C3, C1]
    # Refreshing C1 makes it the most recent among q=0.5.
    table.apply(AOR, "a", 2, [up(C1, q=0.5)], T0 + 4)
    assert contacts(table.lookup(AOR, T0 + 5)) == [C2, C1, C3]


# ---------------------------------------------------------------- caps


def test_too_many_contacts_per_aor() -> None:
    table = BindingTable(2, 100)
    table.apply(AOR, "call-1", 1, [up(C1), up(C2)], T0)
    with pytest.raises(TooManyContacts) as info:
        table.apply(AOR, "call-1", 2, [up(C3)], T0)
    assert info.value.status == 403
    assert contacts(table.lookup(AOR, T0)) == [C2, C1]
    # Replacing one contact by another in the same request stays within the cap.
    result = table.apply(AOR, "call-1", 3, [up(C1, 0), up(C3)], T0)
    assert sorted(contacts(result)) == sorted([C2, C3])


def test_table_full() -> None:
    table = BindingTable(5, 3)
    table.apply("a@x", "c", 1, [up(C1), up(C2)], T0)
    table.apply("b@x", "c", 1, [up(C1)], T0)
    with pytest.raises(TableFull) as info:
        table.apply("c@x", "c", 1, [up(C1)], T0)
    assert info.value.status == 503
    assert len(table) == 3
    # Refreshes still pass when the table is full.
    table.apply("b@x", "c", 2, [up(C1, 7200)], T0)
    # And expired bindings do not count against the cap of the AOR being registered.
    table.apply("b@x", "c", 3, [up(C1, 10)], T0)
    table.apply("b@x", "d", 1, [up(C2)], T0 + 20)
    assert contacts(table.lookup("b@x", T0 + 20)) == [C2]


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BindingTable(0, 10)
    with pytest.raises(ValueError):
        BindingTable(1, 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"expires": -1}, {"q": 1.5}, {"q": -0.1}, {"contact": ""}, {"reg_id": -1}],
)
def test_contact_update_validates(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"contact": C1, "expires": 60, "q": 1.0, "source": "udp:x:1"}
    fields.update(kwargs)
    with pytest.raises(ValueError):
        ContactUpdate(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- wildcard removal


def test_remove_all() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1)], T0)
    table.apply(AOR, "call-2", 7, [up(C2)], T0)
    table.apply("other@x", "call-3", 1, [up(C3)], T0)
    removed = table.remove_all(AOR, "call-1", 2, T0 + 1)
    assert sorted(contacts(removed)) == sorted([C1, C2])
    assert table.lookup(AOR, T0 + 1) == []
    assert len(table) == 1


def test_remove_all_out_of_order_removes_nothing() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1)], T0)
    table.apply(AOR, "call-2", 7, [up(C2)], T0)
    with pytest.raises(OutOfOrderRegister):
        table.remove_all(AOR, "call-2", 7, T0 + 1)
    assert len(table) == 2


def test_remove_all_of_unknown_aor() -> None:
    table = BindingTable(5, 100)
    assert table.remove_all(AOR, "call-1", 1, T0) == []


# ---------------------------------------------------------------- remove and expire


def test_remove_dead_contact() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1), up(C2)], T0)
    removed = table.remove(AOR, C1)
    assert removed is not None and removed.contact == C1
    assert table.remove(AOR, C1) is None
    assert table.remove("nobody@x", C1) is None
    assert contacts(table.lookup(AOR, T0)) == [C2]


def test_expiry_lookup_and_deadlines() -> None:
    table = BindingTable(5, 100)
    assert table.next_deadline() is None
    table.apply(AOR, "call-1", 1, [up(C1, 60), up(C2, 30)], T0)
    table.apply("b@x", "call-9", 1, [up(C3, 45)], T0)
    assert table.next_deadline() == T0 + 30
    assert contacts(table.lookup(AOR, T0 + 30)) == [C1]  # at its expiry a binding is gone
    assert table.expire(T0 + 29) == []
    assert contacts(table.expire(T0 + 30)) == [C2]
    assert table.next_deadline() == T0 + 45
    assert contacts(table.expire(T0 + 100)) == [C3, C1]
    assert len(table) == 0 and table.aor_count() == 0
    assert table.next_deadline() is None


def test_refresh_moves_deadline() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1, 60)], T0)
    table.apply(AOR, "call-1", 2, [up(C1, 600)], T0 + 50)
    assert table.next_deadline() == T0 + 650
    assert table.expire(T0 + 60) == []
    assert len(table) == 1


def test_expired_binding_taken_out_by_register_is_reported_by_expire() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1, 10), up(C2, 10)], T0)
    # At T0+20 both are expired; the REGISTER re-adds C1 and sweeps C2 out of the AOR.
    result = table.apply(AOR, "call-1", 2, [up(C1, 60)], T0 + 20)
    assert contacts(result) == [C1]
    assert len(table) == 1
    assert table.next_deadline() == T0 + 10
    # C2 must still be reported so its stored row can be deleted; C1's key was re-registered.
    assert contacts(table.expire(T0 + 20)) == [C2]
    assert table.next_deadline() == T0 + 80


def test_expired_binding_does_not_cause_out_of_order() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 5, [up(C1, 10)], T0)
    result = table.apply(AOR, "call-1", 5, [up(C1, 10)], T0 + 11)
    assert result[0].expires_at == T0 + 21


def test_all_and_len() -> None:
    table = BindingTable(5, 100)
    table.apply(AOR, "call-1", 1, [up(C1), up(C2)], T0)
    table.apply("b@x", "call-2", 1, [up(C3)], T0)
    assert len(table) == 3
    assert sorted((b.aor, b.contact) for b in table.all()) == sorted(
        [(AOR, C1), (AOR, C2), ("b@x", C3)]
    )


# ---------------------------------------------------------------- load


def stored(aor: str, contact: str, expires_at: float, **kw: object) -> Binding:
    return Binding(
        aor=aor,
        contact=contact,
        expires_at=expires_at,
        q=1.0,
        call_id="cid",
        cseq=1,
        source="udp:127.0.0.1:5062",
        **kw,  # type: ignore[arg-type]
    )


def test_load_drops_expired_and_keeps_order() -> None:
    table = BindingTable(5, 100)
    rows = [
        stored(AOR, C1, T0 + 100),
        stored(AOR, C2, T0 - 1),
        stored(AOR, C3, T0 + 200),
        stored("b@x", C1, T0 + 50),
    ]
    dropped = table.load(rows, T0)
    assert dropped == [rows[1]]
    assert len(table) == 3
    assert contacts(table.lookup(AOR, T0)) == [C3, C1]
    assert table.next_deadline() == T0 + 50


def test_load_enforces_caps_and_dedupes() -> None:
    table = BindingTable(2, 3)
    rows = [
        stored(AOR, C1, T0 + 10),
        stored(AOR, C2, T0 + 20),
        stored(AOR, C3, T0 + 30),  # over the per-AOR cap: the earliest expiring loses
        stored("b@x", "sip:b@HOST", T0 + 5),
        stored("b@x", "sip:b@host", T0 + 40),  # same contact: the later-expiring wins
        stored("c@x", C1, T0 + 1),  # over the total cap
    ]
    dropped = table.load(rows, T0)
    kept = sorted((b.aor, b.contact) for b in table.all())
    assert kept == sorted([(AOR, C2), (AOR, C3), ("b@x", "sip:b@host")])
    assert sorted((b.aor, b.contact, b.expires_at) for b in dropped) == sorted(
        [(AOR, C1, T0 + 10), ("b@x", "sip:b@HOST", T0 + 5), ("c@x", C1, T0 + 1)]
    )


def test_loaded_bindings_keep_out_of_order_protection() -> None:
    table = BindingTable(5, 100)
    table.load([stored(AOR, C1, T0 + 100)], T0)
    with pytest.raises(OutOfOrderRegister):
        table.apply(AOR, "cid", 1, [up(C1)], T0 + 1)
    assert table.apply(AOR, "cid", 2, [up(C1)], T0 + 1)[0].cseq == 2


def test_binding_is_frozen() -> None:
    b = stored(AOR, C1, T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.q = 0.5  # type: ignore[misc]


# ---------------------------------------------------------------- stateful property

AORS = ["a@x", "b@x", "c@x"]
CONTACTS = ["sip:u@10.0.0.1:5060", "sip:u@10.0.0.2:5060", "SIP:u@10.0.0.2:5060", "sip:v@h:1"]
CALL_IDS = ["c1", "c2"]
MAX_PER_AOR = 2
MAX_TOTAL = 4


class BindingTableMachine(RuleBasedStateMachine):
    """Random REGISTERs, removals and expiries against the caps and expiry guarantees."""

    @initialize()
    def setup(self) -> None:
        self.table = BindingTable(MAX_PER_AOR, MAX_TOTAL)
        self.now = T0
        self.cseq = 0

    @rule(
        aor=st.sampled_from(AORS),
        call_id=st.sampled_from(CALL_IDS),
        cseq_step=st.integers(-1, 2),
        updates=st.lists(
            st.tuples(
                st.sampled_from(CONTACTS),
                st.sampled_from([0, 5, 30, 3600]),
                st.sampled_from([0.0, 0.5, 1.0]),
            ),
            max_size=3,
        ),
    )
    def register(
        self,
        aor: str,
        call_id: str,
        cseq_step: int,
        updates: list[tuple[str, int, float]],
    ) -> None:
        self.cseq = max(0, self.cseq + cseq_step)
        before = self.table.lookup(aor, self.now)
        size_before = len(self.table)
        try:
            after = self.table.apply(
                aor, call_id, self.cseq, [up(c, e, q) for c, e, q in updates], self.now
            )
        except BindingError:
            # Nothing of the AOR's live state changed.
            assert self.table.lookup(aor, self.now) == before
            assert len(self.table) == size_before
            return
        assert after == self.table.lookup(aor, self.now)
        for contact, _, _ in updates:
            last = [e for c, e, _ in updates if default_same_contact(c, contact)][-1]
            present = [b for b in after if default_same_contact(b.contact, contact)]
            assert bool(present) == (last > 0)

    @rule(aor=st.sampled_from(AORS), call_id=st.sampled_from(CALL_IDS))
    def unregister_all(self, aor: str, call_id: str) -> None:
        self.cseq += 1
        try:
            self.table.remove_all(aor, call_id, self.cseq, self.now)
        except OutOfOrderRegister:
            return
        assert self.table.lookup(aor, self.now) == []

    @rule(aor=st.sampled_from(AORS), contact=st.sampled_from(CONTACTS))
    def remove(self, aor: str, contact: str) -> None:
        self.table.remove(aor, contact)
        assert not any(
            default_same_contact(b.contact, contact) for b in self.table.lookup(aor, self.now)
        )

    @rule(dt=st.sampled_from([1.0, 4.0, 10.0, 100.0]))
    def tick(self, dt: float) -> None:
        # Time passes without the timer firing: expired bindings linger in the table.
        self.now += dt

    @rule()
    def expire(self) -> None:
        for binding in self.table.expire(self.now):
            assert binding.expires_at <= self.now
        assert all(b.expires_at > self.now for b in self.table.all())

    @precondition(lambda self: self.table.next_deadline() is not None)
    @rule()
    def run_to_deadline(self) -> None:
        deadline = self.table.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline)

    @invariant()
    def caps_hold(self) -> None:
        assert len(self.table) <= MAX_TOTAL
        for aor in AORS:
            assert len(self.table.lookup(aor, self.now)) <= MAX_PER_AOR

    @invariant()
    def lookup_never_returns_expired(self) -> None:
        for aor in AORS:
            for binding in self.table.lookup(aor, self.now):
                assert binding.expires_at > self.now
                assert binding.aor == aor

    @invariant()
    def deadline_is_earliest_expiry(self) -> None:
        deadline = self.table.next_deadline()
        expiries = [b.expires_at for b in self.table.all()]
        if expiries:
            assert deadline is not None and deadline <= min(expiries)
        else:
            # Only bindings swept out by a REGISTER can still be pending.
            assert deadline is None or deadline <= self.now

    def teardown(self) -> None:
        if not hasattr(self, "table"):
            return
        gone = self.table.expire(self.now + 10**9)
        assert all(b.expires_at <= self.now + 10**9 for b in gone)
        assert len(self.table) == 0
        assert self.table.aor_count() == 0
        assert list(self.table.all()) == []
        assert self.table.next_deadline() is None


BindingTableMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestBindingTableMachine = BindingTableMachine.TestCase

"""Contact addresses and one-time invitations on several relays (issue 19): one queue id
on each relay, one link naming them all; a request reaches the owner through whichever
relay is up, once however many carried it; a one-time invitation admits one person,
whichever relay carried the request, and the owner's client refuses the later ones."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chatrelay import contacts
from chatrelay.errors import ChatRelayError, Reason
from chatrelay.links import ShortLink

from realparts import cli, free_port, start_relay


def only(link_text: str, index: int) -> str:
    """The same link naming one of its hosts: what a joiner who reaches only that relay sends."""
    link = ShortLink.parse(link_text)
    return str(dataclasses.replace(link, hosts=(link.hosts[index],), pins=(link.pins[index],) if link.pins else ()))


def names(found) -> list[str]:
    return [r["name"] for r in found]


async def test_an_address_on_two_relays_takes_requests_with_either_stopped_and_each_once(ray_session, tmp_path):
    from chatrelay.cluster import up

    places = {"first": (tmp_path / "first", f"127.0.0.1:{free_port()}"),
              "second": (tmp_path / "second", f"127.0.0.1:{free_port()}")}

    async def start(which):
        data, listen = places[which]
        return await asyncio.to_thread(start_relay, data, listen=listen)

    async def stop(running):
        await asyncio.to_thread(up.stop, running, ray_shutdown=False)

    first, second = await start("first"), await start("second")
    running = [first, second]
    try:
        address = await contacts.create_address([first.link, second.link], "Ann")
        assert ShortLink.parse(address.link).hosts == (
            ShortLink.parse(first.link).hosts[0], ShortLink.parse(second.link).hosts[0])
        bob = await contacts.connect(address.link, "Bob", "hi")  # carried by both relays
        found = await contacts.requests(address)
        assert (names(found), found.skipped) == (["Bob"], [])

        await stop(first)
        running.remove(first)
        carl = await contacts.connect(address.link, "Carl")
        found = await contacts.requests(address)
        assert names(found) == ["Bob", "Carl"]
        [down] = found.skipped
        assert down.item == f"relay {places['first'][1]}" and down.reason is Reason.UNAVAILABLE

        first = await start("first")  # back, with its queue; now the second stops
        running.append(first)
        await stop(second)
        running.remove(second)
        dave = await contacts.connect(address.link, "Dave", "through the first")
        found = await contacts.requests(address)
        assert names(found) == ["Bob", "Carl", "Dave"]
        assert [s.item for s in found.skipped] == [f"relay {places['second'][1]}"]

        async def accept(joiner, request) -> None:
            ann = await contacts.accept(address, request["id"])
            assert await contacts.inbox(joiner) == ["Ann accepted the connection"]
            await contacts.send(joiner, f"from {request['name']}")
            assert await contacts.inbox(ann) == [f"from {request['name']}"]

        by_name = {r["name"]: r for r in found}
        await accept(bob, by_name["Bob"])
        await accept(dave, by_name["Dave"])
        # Carl's reply queue is on the second relay, which is down: he hears once it is back.
        with pytest.raises(ChatRelayError) as info:
            await contacts.accept(address, by_name["Carl"]["id"])
        assert info.value.reason is Reason.UNAVAILABLE
        assert names(await contacts.requests(address)) == ["Carl"]
        second = await start("second")
        running.append(second)
        await accept(carl, by_name["Carl"])
        assert (names(await contacts.requests(address)), sorted(address.handled.values())) == (
            [], ["accepted"] * 3)
    finally:
        for r in running:
            await stop(r)


async def test_a_one_time_invitation_on_two_relays_admits_one_person(relay, ray_session, tmp_path):
    from chatrelay.cluster import up

    second = await asyncio.to_thread(start_relay, tmp_path / "second")
    try:
        invitation = await contacts.create_address([relay.link, second.link], "Inv", one_time=True)
        xena = await contacts.connect(only(invitation.link, 0), "Xena")  # reaches the first relay only
        [request] = await contacts.requests(invitation)
        ann = await contacts.accept(invitation, request["id"])
        assert await contacts.inbox(xena) == ["Inv accepted the connection"]

        # The second relay took no request yet: it carries one more, which the owner refuses.
        yann = await contacts.connect(only(invitation.link, 1), "Yann")
        found = await contacts.requests(invitation)
        assert (found, found.skipped) == ([], [])
        assert await contacts.inbox(yann) == ["Inv refused the connection: this one-time invitation was used already"]
        assert yann.status == "refused"
        with pytest.raises(ChatRelayError) as info:
            await contacts.send(yann, "hello?")
        assert (info.value.reason, info.value.message) == (Reason.REFUSED, "Inv refused the connection")
        [(refused_id, said)] = [(k, v) for k, v in invitation.handled.items() if v != "accepted"]
        assert said == "refused"
        with pytest.raises(ChatRelayError) as info:
            await contacts.accept(invitation, refused_id)
        assert (info.value.reason, info.value.message) == (Reason.REFUSED, f"request {refused_id} was refused already")

        # Both relays took their one request now: a third person is refused by them.
        with pytest.raises(ChatRelayError) as info:
            await contacts.connect(invitation.link, "Zed")
        assert (info.value.reason, info.value.message) == (Reason.REFUSED, "this one-time invitation has already been used")
        await contacts.send(xena, "only me")
        assert await contacts.inbox(ann) == ["only me"]

        state = str(tmp_path / "cli.json")
        made = await asyncio.to_thread(cli, "invitation", "create", "--relay", relay.link, "--relay", second.link,
                                       "--name", "Cli", "--state", state)
        assert made.returncode == 0, made.stderr
        assert len(ShortLink.parse(made.stdout.strip()).hosts) == 2
        none = await asyncio.to_thread(cli, "address", "create", "--state", str(tmp_path / "none.json"))
        assert (none.returncode, none.stdout, none.stderr) == (2, "", (
            "chatrelay: no relay given and none configured: pass --relay RELAY_LINK, or add one with "
            "`chatrelay relays config add RELAY_LINK` (malformed)\n"))
    finally:
        await asyncio.to_thread(up.stop, second, ray_shutdown=False)

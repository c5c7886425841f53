"""The escalation engine: starts a policy when an incident opens, fires each due step from the
store on the injected clock, delivers e-mail at least once with retry and backoff, and stops on
acknowledgement or close.

Every step ends as sent (``IncidentEscalated``) or as a visible error (``EscalationFailed`` on
the incident's timeline and an ``escalation_failed`` alert) within ``escalation_error_after_s``
of its due time, however the SMTP server behaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from hms_contracts import IncidentOpened
from hms_contracts.base import SYSTEM_NAMESPACE
from hms_contracts.bus import BusEvent
from hms_contracts.config import EscalationPolicy, OncallSchedule
from hms_kit import Clock
from nats.js import JetStreamContext

from . import core
from . import events as ev
from .email import EmailSender
from .errors import DeliveryFailed, InvalidMessage
from .links import AckClaim, LinkSigner, new_nonce
from .settings import EscalationSettings
from .store import Delivery, DueStep, EscalationStore, NewDelivery, NewLink

log = logging.getLogger(__name__)

ACK_PATH = "/escalation/ack/"


class Directory(Protocol):
    """Where policies and on-call schedules are looked up (the config registry)."""

    def policy(self, namespace: str, name: str) -> EscalationPolicy | None: ...

    def schedule(self, namespace: str, name: str) -> OncallSchedule | None: ...


class EscalationEngine:
    """Escalation for every incident, its state in an :class:`EscalationStore`."""

    def __init__(
        self,
        store: EscalationStore,
        sender: EmailSender,
        signer: Callable[[], LinkSigner],
        directory: Directory,
        clock: Clock,
        settings: EscalationSettings,
        link_base: Callable[[], str],
        on_degraded: Callable[[str | None], None] = lambda reason: None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.signer = signer
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.link_base = link_base
        self.on_degraded = on_degraded
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._failing: set[int] = set()
        self._probe_slot: int | None = None

    # --- what the incident lifecycle tells it -----------------------------------------------

    async def opened(self, event: IncidentOpened) -> None:
        """Start the incident's policy (its label's, else the namespace's ``default``)."""
        ns = event.namespace
        policy = core.choose_policy(event.labels, lambda name: self.directory.policy(ns, name))
        if policy is None:
            log.info("incident %s/%s: no escalation policy applies", ns, event.incident_id)
            return
        incident = core.Incident(
            ns, event.incident_id, event.title, event.severity, event.occurred_at, event.labels
        )
        if await self.store.start(incident, policy, core.first_step(event.occurred_at)):
            log.info("incident %s/%s: escalating by policy %s", ns, event.incident_id, policy.name)
            self._wake.set()

    async def acknowledged(self, namespace: str, incident_id: str, at: datetime) -> None:
        """Stop notifying; with an acknowledgement timeout, notify again from level 1 then."""
        found = await self.store.escalation(namespace, incident_id)
        if found is None:
            return
        again = core.renotify_at(found.policy, at)
        if await self.store.acknowledge(namespace, incident_id, again):
            log.info("incident %s/%s acknowledged; again at %s", namespace, incident_id, again)

    async def closed(self, namespace: str, incident_id: str) -> None:
        if await self.store.close_incident(namespace, incident_id):
            log.info("incident %s/%s closed: escalation stopped", namespace, incident_id)

    async def notify(
        self,
        namespace: str,
        incident_id: str,
        subject: str,
        body: str,
        targets: Sequence[str],
        *,
        key: str,
    ) -> bool:
        """Queue a notification (a playbook's notify step) for delivery, at least once, with the
        same retries and errors as escalation; ``key`` (the request's event id) makes a repeated
        request one delivery. Targets are addresses, on-call schedules, policies or ``oncall``
        (see :func:`core.notify_recipients`), resolved now. InvalidMessage, before anything is
        queued, for a line break in a header or a target that reaches nobody."""
        now = self.clock.now()
        reach = core.notify_recipients(
            targets,
            now,
            lambda name: self.directory.schedule(namespace, name),
            lambda name: self.directory.policy(namespace, name),
        )
        if reach.problems:
            raise InvalidMessage(f"notify in {namespace}: {'; '.join(reach.problems)}")
        # built only to check the subject and the addresses now, not at send time
        self.sender.message(
            namespace, incident_id, subject, body, reach.addresses, message_id=ev.message_id(key)
        )
        delivery = NewDelivery(
            key, namespace, incident_id, None, reach.addresses, subject, body, due_at=now
        )
        added = await self.store.add_delivery(delivery, now)
        self._wake.set()
        return added

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, js: JetStreamContext, may_act: Callable[[], bool] = lambda: True) -> None:
        """Tick until cancelled: fire due steps, start due deliveries, publish the outbox."""
        while True:
            self._wake.clear()  # before the tick: news during the tick wakes the next one
            if may_act():
                try:
                    await self.tick()
                    await self.publish_outbox(js)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the store or the bus hiccuped: the next tick tries again
                    log.exception("escalation tick failed; retrying")
            sleeping = asyncio.ensure_future(self.clock.sleep(self.settings.escalation_tick_s))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeping.cancel()
                woken.cancel()

    async def tick(self) -> None:
        now = self.clock.now()
        await self._probe(now)
        for step in await self.store.due_steps(now):
            await self._fire(step, now)
        for delivery in await self.store.due_deliveries(now):
            if delivery.id not in self._inflight and len(self._inflight) < 20:
                task = asyncio.create_task(self._deliver(delivery))
                self._inflight[delivery.id] = task
                task.add_done_callback(functools.partial(self._done, delivery.id))
        await self._overdue(now)  # after the launch: an attempt under way reports for itself

    def _done(self, delivery_id: int, _: asyncio.Task[None]) -> None:
        self._inflight.pop(delivery_id, None)

    async def _overdue(self, now: datetime) -> None:
        """Deliveries still waiting their turn (none of their attempts failed yet: the engine
        was busy or down) raise their alert on time too."""
        limit = now - timedelta(seconds=self.settings.escalation_error_after_s)
        for d, error in await self.store.overdue(limit):
            if d.id in self._inflight:
                continue
            late = f"not sent {(now - d.due_at).total_seconds():.0f} s after its due time"
            reason = f"{late}: {error}" if error else late
            events = ev.unsent(ev.Unsent.of(d, reason, d.attempts), now, retrying=True)
            await self.store.alerted(d, events)

    async def _probe(self, now: datetime) -> None:
        """Queue this period's test notification (once per period, whatever the restarts):
        it goes the way every notification goes, so a broken path raises its alert even
        while no incident is open."""
        every, to = self.settings.escalation_probe_every_s, self.settings.escalation_probe_to
        if every is None or to is None:
            return
        slot = int(now.timestamp() // every)
        if slot == self._probe_slot:
            return
        at = datetime.fromtimestamp(slot * every, UTC)
        subject = f"[hms-ops] escalation probe {at.isoformat()}"
        body = "A test of the escalation path: nothing to do. It is sent every "
        body += f"{every:g} s; an alert is raised when one is not accepted in time.\n"
        key = f"probe/{at.isoformat()}"
        delivery = NewDelivery(
            key, SYSTEM_NAMESPACE, ev.PROBE_INCIDENT, None, (to,), subject, body, now
        )
        await self.store.add_delivery(delivery, now)
        self._probe_slot = slot

    async def settle(self) -> None:
        """Wait for the deliveries under way (tests, shutdown)."""
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.settle()

    async def publish_outbox(self, js: JetStreamContext) -> int:
        """Publish what the store's outbox holds, with its ids; returns how many."""
        done = 0
        while batch := await self.store.outbox():
            acked = []
            for row_id, event_id, subject, data in batch:
                headers = {"Nats-Msg-Id": event_id, "Content-Type": "application/json"}
                await js.publish(subject, data.encode(), headers=headers, timeout=5.0)
                acked.append(row_id)
            await self.store.published(acked)
            done += len(acked)
        return done

    # --- steps ------------------------------------------------------------------------------

    async def _fire(self, step: DueStep, now: datetime) -> None:
        found = await self.store.escalation(step.namespace, step.incident_id)
        if found is None:
            return
        ns, iid, level = step.namespace, step.incident_id, step.at.level
        policy = found.policy
        reach = core.recipients(policy, level, now, lambda n: self.directory.schedule(ns, n))
        ttl = timedelta(seconds=self.settings.ack_link_ttl_s)
        signer = self.signer()
        deliveries, links = [], []
        for address in reach.addresses:
            claim = AckClaim(ns, iid, address, now + ttl, new_nonce())
            url = self.link_base().rstrip("/") + ACK_PATH + signer.sign(claim)
            links.append(NewLink(claim.nonce, ns, iid, address, claim.expires_at))
            deliveries.append(
                NewDelivery(
                    key=f"{ns}/{iid}/{step.epoch}/{step.at.round}/{level + 1}/{address}",
                    namespace=ns,
                    incident_id=iid,
                    level=level + 1,
                    targets=(address,),
                    subject=core.escalation_subject(found.incident, level),
                    body=core.escalation_body(found.incident, level, url, ttl),
                    due_at=step.at.due_at,
                )
            )
        events: list[BusEvent] = []
        for problem in reach.problems:
            where = f"{policy.name}/{step.epoch}/{step.at.round}/{level + 1}"
            u = ev.Unsent(ns, iid, where, level + 1, None, problem, 0, step.at.due_at)
            events += ev.unsent(u, now, retrying=False)
            log.error("incident %s/%s: %s", ns, iid, problem)
        following = core.next_step(policy, step.at)
        if await self.store.fire(step, now, deliveries, links, following, events):
            late = (now - step.at.due_at).total_seconds()
            log.info("incident %s/%s: level %d fired (%.1fs late)", ns, iid, level + 1, late)

    # --- deliveries -------------------------------------------------------------------------

    async def _deliver(self, d: Delivery) -> None:
        try:
            sent = await self.sender.send(
                d.namespace,
                d.incident_id,
                d.subject,
                d.body,
                d.targets,
                message_id=ev.message_id(d.key),
            )
        except (InvalidMessage, DeliveryFailed) as exc:
            permanent = isinstance(exc, InvalidMessage) or getattr(exc, "permanent", False)
            await self._failed(d, str(exc), permanent=permanent)
            return
        except Exception as exc:  # never let a delivery die silently
            log.exception("delivery %s failed unexpectedly", d.key)
            await self._failed(d, f"{type(exc).__name__}: {exc}", permanent=False)
            return
        now = self.clock.now()
        events: list[BusEvent] = [*ev.escalated(d, sent, now)]
        if d.alerted:
            events.append(ev.sent_after_all(ev.Unsent.of(d, "", d.attempts + 1), now))
        await self.store.sent(d, sent, now, events)
        self._failing.discard(d.id)
        if not self._failing:
            self.on_degraded(None)
        self._wake.set()  # the outbox has news

    async def _failed(self, d: Delivery, error: str, *, permanent: bool) -> None:
        now = self.clock.now()
        late = (now - d.due_at).total_seconds()
        give_up = permanent or late >= self.settings.escalation_give_up_s
        attempts = d.attempts + 1
        u = ev.Unsent.of(d, error, attempts)
        events: list[BusEvent] = []
        if not d.alerted and (give_up or late >= self.settings.escalation_error_after_s):
            events += ev.unsent(u, now, retrying=not give_up)
        elif give_up:  # its alert is up already: the timeline learns it is given up
            events.append(ev.timeline_entry(u, now, retrying=False))
        retry = core.retry_delay(attempts, self.settings.escalation_retry_max_s)
        next_try = None if give_up else now + timedelta(seconds=retry)
        log.warning(
            "delivery %s attempt %d failed (%s); %s",
            d.key,
            attempts,
            error,
            "giving up" if give_up else f"retrying in {retry:g}s",
        )
        await self.store.failed(d, error, next_try, d.alerted or bool(events), events)
        self._failing.add(d.id)
        self.on_degraded(f"notifications failing: {error}")

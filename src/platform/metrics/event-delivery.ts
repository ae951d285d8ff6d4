/**
 * Run events handed to subscribers (platform/events/event-hub.ts calls this once per event per
 * subscriber): how many, live or replayed, and for live ones the lag since the event's commit.
 */
import { DeliveryMode, eventFanOutLag, eventsDelivered } from "./metrics.ts";

/**
 * `createdAt`: the event row's time (its writing transaction's); a replayed event is old by
 * design, so only live ones are timed. The lag compares this process's clock with that time:
 * keep the API's and the database's clocks in sync (NTP) for it to mean anything.
 */
export function recordEventDelivery(createdAt: Date, replay: boolean): void {
  eventsDelivered.inc({ mode: replay ? DeliveryMode.REPLAY : DeliveryMode.LIVE });
  if (!replay) eventFanOutLag.observe(Math.max(0, (Date.now() - createdAt.getTime()) / 1000));
}

/** gitpod.v1.EventService: the change feed the Gitpod SDK's wait helpers follow. */
import { EventService } from "../../proto/gen/gitpod/v1/event_pb";
import { notYetImplemented } from "./registry";

export const gitpodEvents = notYetImplemented(EventService, {
  // Server streaming; the handler checks the scope the request names.
  watchEvents: { action: "environment:view" },
});

// The npm `eventsource` client (a WHATWG EventSource for Node), driven by tests/peers/test_node.py.
// Usage: node eventsource_client.mjs URL COUNT [POSITION_TYPE]
// Prints one JSON line per happening: {"open": true}, {"type", "id", "data"} for each event
// (message and the named type "tick"), {"error": ..., "readyState": n} for each error, and,
// when POSITION_TYPE is given, {"position": lastEventId, "data": ...} for each event of that
// type (sse_core's position block). Exits 0 after COUNT events.
import { EventSource } from "eventsource";

const [url, countText, positionType] = process.argv.slice(2);
const count = Number(countText);
const source = new EventSource(url);
let received = 0;

function print(record) {
    process.stdout.write(JSON.stringify(record) + "\n");
}

function onEvent(event) {
    print({ type: event.type, id: event.lastEventId, data: event.data });
    received += 1;
    if (received >= count) {
        source.close();
        process.exit(0);
    }
}

source.addEventListener("open", () => print({ open: true }));
source.addEventListener("message", onEvent);
source.addEventListener("tick", onEvent);
if (positionType) {
    source.addEventListener(positionType, (event) => {
        print({ position: event.lastEventId, data: event.data });
    });
}
source.addEventListener("error", (event) => {
    print({ error: String(event.message ?? event.type), readyState: source.readyState });
});

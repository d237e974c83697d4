// A `better-sse` event-stream server for Node, driven by tests/peers/test_node.py.
// Usage: node better_sse_server.mjs TOTAL CUT_AFTER
// Serves GET /events. The stream has TOTAL events with ids "1".."TOTAL"; every third one is of
// the named type "tick", the others "message"; data is {"n": i, "text": ...}, JSON-encoded as
// better-sse does by default. A request resumes after its Last-Event-ID (a number; anything else
// starts from the beginning). The first connection gets events up to CUT_AFTER, then half an
// event (an id line, and a data line cut inside a UTF-8 character), then the socket is closed
// under it; later connections get the rest and stay open.
// Prints {"port": p} once listening, then {"request": n, "lastEventId": ...} per request and
// {"closed": n} when that request's connection is gone.
import http from "node:http";
import { createSession } from "better-sse";

const [total, cutAfter] = process.argv.slice(2).map(Number);
let requests = 0;

function print(record) {
    process.stdout.write(JSON.stringify(record) + "\n");
}

function pushRange(session, first, last) {
    for (let n = first; n <= last; n++) {
        const type = n % 3 === 0 ? "tick" : "message";
        session.push({ n, text: `évènement ${n} <&>` }, type, String(n));
    }
}

const server = http.createServer(async (req, res) => {
    if (new URL(req.url, "http://localhost").pathname !== "/events") {
        res.writeHead(404).end();
        return;
    }
    requests += 1;
    const request = requests;
    print({ request, lastEventId: req.headers["last-event-id"] ?? null });
    res.on("close", () => print({ closed: request }));
    // For Node's http, createSession resolves once the head and retry: are written.
    const session = await createSession(req, res, { retry: 50, keepAlive: null });
    const resumeAfter = /^[0-9]+$/.test(session.lastId) ? Number(session.lastId) : 0;
    if (request === 1) {
        pushRange(session, resumeAfter + 1, cutAfter);
        // Half an event: the id line is complete, the data line stops inside the two bytes
        // of "é", and the blank line never comes.
        const half = Buffer.from('id:half\ndata:{"n": "é', "utf8");
        res.write(half.subarray(0, half.length - 1), () => res.socket.destroy());
    } else {
        pushRange(session, resumeAfter + 1, total);
    }
});

server.listen(0, "127.0.0.1", () => print({ port: server.address().port }));

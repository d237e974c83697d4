// A `better-sse` server for tests/test_cli_check.py, used as its docs show: one session per
// request, a live feed pushed every 200 ms as an event named "tick" (better-sse's defaults
// otherwise: its retry, keep-alive and serializer). Usage: node better_sse_check_server.mjs
// Prints {"port": p} once listening on 127.0.0.1.
import http from "node:http";
import { createSession } from "better-sse";

const start = Date.now();

const server = http.createServer(async (req, res) => {
    if (new URL(req.url, "http://localhost").pathname !== "/events") {
        res.writeHead(404).end();
        return;
    }
    const session = await createSession(req, res);
    const timer = setInterval(() => {
        const n = Math.floor((Date.now() - start) / 200);
        session.push(`tick ${n}`, "tick");
    }, 200);
    res.on("close", () => clearInterval(timer));
});

server.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});

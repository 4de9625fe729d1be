//! WebSocket interop with independent clients: Python `websockets` and Node `ws`.
//!
//! The clients come from the project's test script (`./test.sh`), which sets
//! `POLLSERVE_TEST_PYTHON` (a venv with `websockets`) and installs
//! `tests/node/node_modules`. Without them these tests print `SKIPPED` and pass,
//! so a bare `cargo test` works on any machine; `./test.sh` always runs them.

mod common;

use std::process::Command;

use pollserve::ws::WsId;
use pollserve::{Method, Server, ServerConfig};

/// `/ws` accepts a WebSocket; after every poll the program echoes each
/// message back on the socket it came from.
fn echo_server() -> common::TestServer<Vec<WsId>> {
    let echo = |server: &mut Server<Vec<WsId>>, ids: &mut Vec<WsId>| {
        for &id in ids.iter() {
            while let Some(m) = server.ws(id).receive() {
                server.ws(id).send(&m).unwrap();
            }
        }
        ids.retain(|&id| !server.ws(id).is_closed());
    };
    common::serve_loop(ServerConfig::default(), Vec::new(), echo, |s| {
        s.route("/ws", Method::GET, |req, ids: &mut Vec<WsId>| {
            let (resp, id) = req.accept_websocket()?;
            ids.push(id);
            Ok(resp)
        })
        .unwrap();
    })
}

const PY_CLIENT: &str = r#"
import asyncio, sys, websockets
async def main(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("héllo"); assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xffbin"); assert await ws.recv() == b"\x00\xffbin"
        big = bytes(i * 7 % 251 for i in range(2_000_000))
        await ws.send(big); assert await ws.recv() == big
        # A fragmented message: websockets sends an iterable as fragments.
        await ws.send(["frag", "ment", "ed é"]); assert await ws.recv() == "fragmented é"
        waiter = await ws.ping(b"py"); await asyncio.wait_for(waiter, 5)
        for i in range(200):
            await ws.send(f"m{i}")
        for i in range(200):
            assert await ws.recv() == f"m{i}"
    assert ws.close_code == 1000, ws.close_code
    print("python websockets interop: ok")
asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn python_websockets_client() {
    let Some(python) = common::python("python_websockets_client") else {
        return;
    };
    let srv = echo_server();
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(PY_CLIENT)
        .arg(format!("ws://{}/ws", srv.addr));
    let out = common::run(&mut cmd);
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(
        out.status.success() && text.contains("python websockets interop: ok"),
        "{text}"
    );
}

#[test]
fn node_ws_client() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    if !dir.join("node_modules/ws").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        return common::skipped(
            "node_ws_client: node or tests/node/node_modules missing (run ./test.sh)",
        );
    }
    let srv = echo_server();
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("ws_client.mjs"))
        .arg(format!("ws://{}/ws", srv.addr));
    let out = common::run(&mut cmd);
    let text = format!("{}{}", out.stdout_text(), out.stderr);
    assert!(
        out.status.success() && text.contains("node ws interop: ok"),
        "{text}"
    );
}

#[test]
fn handshake_rejected_without_upgrade_route_state() {
    // A GET without an Upgrade on a WebSocket route is refused.
    let srv = echo_server();
    let r = common::get(srv.addr, "/ws");
    assert_eq!(r.status, 400);
}

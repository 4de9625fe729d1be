//! Target program of the issue-15 attack round: a dashboard and a chat built
//! on pollserve's broadcast and group API, configured by environment
//! variables (see `attack/issue15/README.md`). Not part of the library.
//!
//! Routes:
//! - `/hello`: a small response (the probe's request).
//! - `/stats`: the last stats line the loop wrote (JSON).
//! - `/ws`: a WebSocket joining group `all` (`?deflate=1` negotiates
//!   permessage-deflate when offered; `&ctx=1` keeps the server's context;
//!   `&level=N`).
//! - `/events`: an event stream joining group `all`.
//! - `/stream`: a kept stream joining group `all`.
//! - `/chat`: a WebSocket joining group `chat`; every message it sends is
//!   broadcast to the whole group by the loop.
//! - `/g/<n>`: a WebSocket joining group `n % GROUPS`.
//!
//! The loop broadcasts `BCAST_SIZE` bytes every `BCAST_MS` to group `all`
//! (or to a `Vec<WsId>` with `BCAST_VIA=list`; `BCAST_SIZES=a,b,c` cycles sizes), and with `GROUP_BCAST=1` a
//! short `g<n>:<seq>` message to each `/g` group. Every broadcast message
//! begins with a 32-byte header `S<seq:10>T<unix ns:19>|` followed by a
//! filler the client can recompute (`abc…z` rotated by `seq % 26`), so a
//! client checks every byte and measures its delivery latency.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pollserve::group::GroupId;
use pollserve::sse::{SseEvent, SseId, SseOptions};
use pollserve::stream::{StreamId, StreamOptions};
use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Method, Response, Server, ServerConfig};

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// The broadcast message number `seq` of `size` bytes (at least the header).
/// Tag `R`: the filler is pseudo-random letters (an LCG seeded with `seq`),
/// which compress to about 60 % instead of almost nothing.
fn message(tag: u8, seq: u64, size: usize, out: &mut String) {
    out.clear();
    out.push(tag as char);
    out.push_str(&format!("{seq:010}T{:019}|", unix_ns()));
    if tag == b'R' {
        let mut x = seq as u32 & 0x7fff_ffff;
        while out.len() < size {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345) & 0x7fff_ffff;
            out.push(ALPHA[((x >> 16) % 26) as usize] as char);
        }
        return;
    }
    let rot = (seq % 26) as usize;
    let mut i = 0;
    while out.len() < size {
        out.push(ALPHA[(rot + i) % 26] as char);
        i += 1;
    }
}

struct App {
    all: GroupId,
    chat: GroupId,
    groups: Vec<GroupId>,
    /// Every WebSocket of `/ws`, for `BCAST_VIA=list`.
    sockets: Vec<WsId>,
    sse: Vec<SseId>,
    streams: Vec<StreamId>,
    chat_ids: HashSet<WsId>,
    ws_options: WsOptions,
    sse_options: SseOptions,
    stream_options: StreamOptions,
    stats_json: String,
    joined: u64,
}

fn ws_options_for(base: &WsOptions, req: &pollserve::Request) -> WsOptions {
    let mut options = base.clone();
    if req.query().get("deflate") == Some("1") {
        let mut d = DeflateOptions::default();
        if req.query().get("ctx") == Some("1") {
            d.server_no_context_takeover = false;
        }
        if let Some(level) = req.query().get("level").and_then(|l| l.parse().ok()) {
            d.level = level;
        }
        options.deflate = Some(d);
    }
    options
}

fn proc_status() -> (u64, u64) {
    let mut rss = 0;
    let mut hwm = 0;
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        for line in s.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                rss = kb(line);
            } else if line.starts_with("VmHWM:") {
                hwm = kb(line);
            }
        }
    }
    (rss, hwm)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = env_num("PORT", 0) as u16;
    let bcast_ms = env_num("BCAST_MS", 0) as u64;
    let bcast_size = env_num("BCAST_SIZE", 64).max(32) as usize;
    // A cycle of sizes (`BCAST_SIZES=100,255,256,70000`) instead of one.
    let bcast_sizes: Vec<usize> = env_str("BCAST_SIZES", "")
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
        .map(|s| s.max(32))
        .collect();
    let bcast_burst = env_num("BCAST_BURST", 1).max(1) as u64;
    let bcast_ws = env_num("BCAST_WS", 1) == 1;
    let bcast_sse = env_num("BCAST_SSE", 0) == 1;
    let bcast_stream = env_num("BCAST_STREAM", 0) == 1;
    let bcast_binary = env_num("BCAST_BINARY", 0) == 1;
    let bcast_list = env_str("BCAST_VIA", "group") == "list";
    let bcast_max = env_num("BCAST_MAX", i64::MAX) as u64;
    let bcast_tag = if env_num("BCAST_RANDOM", 0) == 1 {
        b'R'
    } else {
        b'S'
    };
    let group_bcast = env_num("GROUP_BCAST", 0) == 1;
    let receive = env_num("RECEIVE", 1) == 1;
    // `RECEIVE_EVERY_MS` > 0: a slow program. The ids `ws_ready` lists are
    // kept in its own list, and every `RECEIVE_EVERY_MS` ms at most
    // `RECEIVE_BATCH` of them are taken (oldest first).
    // `RECEIVE_COUNT=1` with `RECEIVE_EVERY_MS=0`: the same path and
    // counts, taking every listed id after each poll.
    let receive_every = env_num("RECEIVE_EVERY_MS", 0) as u64;
    let receive_count = receive_every > 0 || env_num("RECEIVE_COUNT", 0) == 1;
    let receive_batch = env_num("RECEIVE_BATCH", i64::MAX) as usize;
    // `DROP_AT_MS` > 0: the server is dropped at that time (the `Sender`
    // thread keeps sending), then the process waits `DROP_LINGER_MS` and
    // writes what the `Sender` saw.
    let drop_at = env_num("DROP_AT_MS", 0) as u64;
    let drop_linger = env_num("DROP_LINGER_MS", 2000) as u64;
    let n_groups = env_num("GROUPS", 8).max(1) as usize;
    let stats_file = std::env::var("STATS_FILE").ok();
    let stats_ms = env_num("STATS_MS", 250) as u64;
    // `STATS_FULL=0`: no `Server::stats` walk (connection count only), so
    // the monitoring does not disturb a latency measurement.
    let stats_full = env_num("STATS_FULL", 1) == 1;
    let sender_rate = env_num("SENDER_RATE", 0);
    let sender_count = env_num("SENDER_COUNT", 0) as u64;
    let sender_size = env_num("SENDER_SIZE", 64).max(32) as usize;
    let sender_delay = env_num("SENDER_DELAY_MS", 0) as u64;
    // The program's own slow work, once: at `STALL_AT_MS` after start the
    // loop does not poll for `STALL_MS` (a slow sensor, a file write).
    let stall_at = env_num("STALL_AT_MS", 0) as u64;
    let stall_ms = env_num("STALL_MS", 0) as u64;
    let started = Instant::now();
    let mut stalled = stall_ms == 0;

    let mut config = ServerConfig::default()
        .send_timeout(Duration::from_secs(env_num("SEND_TIMEOUT_S", 60) as u64))
        .max_connections(env_num("MAX_CONN", 16_384) as usize)
        .backlog(4096);
    if let Some(sndbuf) = std::env::var("SNDBUF").ok().and_then(|v| v.parse().ok()) {
        config = config.send_buffer_size(Some(sndbuf));
    }
    let mut server = Server::<App>::with_config(config);
    let all = server.new_group();
    let chat = server.new_group();
    let groups: Vec<GroupId> = (0..n_groups).map(|_| server.new_group()).collect();

    let mut ws_options = WsOptions {
        max_send_buffer: env_num("WS_SEND_BUF", 8 << 20) as usize,
        ..WsOptions::default()
    };
    // `WS_KEEPALIVE_S=0`: no keepalive pings (fleets of clients that do not
    // answer them are then not dropped after a minute).
    match env_num("WS_KEEPALIVE_S", 30) {
        0 => ws_options.protocol.keepalive_interval = None,
        s => ws_options.protocol.keepalive_interval = Some(Duration::from_secs(s as u64)),
    }
    let sse_options = SseOptions {
        max_send_buffer: env_num("SSE_SEND_BUF", 1 << 20) as usize,
        ..SseOptions::default()
    };
    let stream_options = StreamOptions {
        max_send_buffer: env_num("STREAM_SEND_BUF", 1 << 20) as usize,
    };

    server
        .route("/hello", Method::GET, |_req, _app: &mut App| {
            Ok(Response::text("hello"))
        })?
        .route("/stats", Method::GET, |_req, app: &mut App| {
            Ok(Response::text(app.stats_json.clone()))
        })?
        .route("/ws", Method::GET, |req, app: &mut App| {
            let options = ws_options_for(&app.ws_options, req);
            let (response, ws) = req.websocket().options(options).accept()?;
            req.outbox().join(app.all, ws);
            app.sockets.push(ws);
            app.joined += 1;
            Ok(response)
        })?
        .route("/events", Method::GET, |req, app: &mut App| {
            let (response, sse) = req.accept_sse_with(app.sse_options.clone())?;
            req.outbox().join(app.all, sse);
            app.sse.push(sse);
            app.joined += 1;
            Ok(response)
        })?
        .route("/stream", Method::GET, |req, app: &mut App| {
            let (response, id) =
                req.accept_stream_with("application/octet-stream", app.stream_options.clone())?;
            req.outbox().join(app.all, id);
            app.streams.push(id);
            app.joined += 1;
            Ok(response)
        })?
        .route("/chat", Method::GET, |req, app: &mut App| {
            let options = ws_options_for(&app.ws_options, req);
            let (response, ws) = req.websocket().options(options).accept()?;
            req.outbox().join(app.chat, ws);
            app.chat_ids.insert(ws);
            app.joined += 1;
            Ok(response)
        })?
        .route("/g/<n>", Method::GET, |req, app: &mut App| {
            let n: usize = req.param("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            let (response, ws) = req.websocket().options(app.ws_options.clone()).accept()?;
            req.outbox().join(app.groups[n % app.groups.len()], ws);
            app.joined += 1;
            Ok(response)
        })?;

    let addr = server.start("127.0.0.1", port)?;
    let mut tls_port = 0;
    if env_num("TLS", 0) == 1 {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        let tls = pollserve::tls::TlsConfig::from_pem(
            cert.cert.pem().as_bytes(),
            cert.signing_key.serialize_pem().as_bytes(),
        )?;
        tls_port = server
            .start_tls("127.0.0.1", env_num("TLS_PORT", 0) as u16, tls)?
            .port();
    }
    println!(
        "{{\"port\":{},\"tls_port\":{},\"pid\":{}}}",
        addr.port(),
        tls_port,
        std::process::id()
    );
    std::io::stdout().flush()?;

    // The cross-thread flood: `SENDER_COUNT` messages to group `all` at
    // `SENDER_RATE` per second (-1: as fast as the thread can queue).
    let sender_queued = Arc::new(AtomicU64::new(0));
    let sender_refused = Arc::new(AtomicU64::new(0));
    let sender_gone = Arc::new(AtomicU64::new(0));
    let sender_done = Arc::new(AtomicU64::new(0));
    if sender_count > 0 {
        let sender = server.sender()?;
        let queued = Arc::clone(&sender_queued);
        let refused = Arc::clone(&sender_refused);
        let gone = Arc::clone(&sender_gone);
        let done = Arc::clone(&sender_done);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(sender_delay));
            let start = Instant::now();
            let mut text = String::new();
            for seq in 0..sender_count {
                if sender_rate > 0 {
                    let due = start + Duration::from_secs_f64(seq as f64 / sender_rate as f64);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                message(b'F', seq, sender_size, &mut text);
                // A refused message (the queue is full) is counted and
                // dropped, as a producer of live data would.
                match sender.group_send(all, Message::Text(text.clone())) {
                    Ok(()) => {}
                    Err(pollserve::Error::ServerGone) => {
                        gone.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                queued.store(seq + 1, Ordering::Relaxed);
            }
            done.store(1, Ordering::Relaxed);
        });
    }

    let mut app = App {
        all,
        chat,
        groups,
        sockets: Vec::new(),
        sse: Vec::new(),
        streams: Vec::new(),
        chat_ids: HashSet::new(),
        ws_options,
        sse_options,
        stream_options,
        stats_json: String::from("{}"),
        joined: 0,
    };

    let tick = Duration::from_millis(bcast_ms.max(1));
    let stats_every = Duration::from_millis(stats_ms.max(10));
    let mut next_bcast = Instant::now() + tick;
    let mut next_stats = Instant::now();
    let mut seq: u64 = 0;
    let mut text = String::new();
    let mut chat_received: u64 = 0;
    let mut chat_fanout: u64 = 0;
    let mut accepted_total: u64 = 0;
    let mut polls: u64 = 0;
    let mut max_poll_ms: f64 = 0.0;
    let mut max_work_ms: f64 = 0.0;
    let mut closed_total: u64 = 0;
    let mut accepted_conns: u64 = 0;
    let mut recv_pending: std::collections::VecDeque<WsId> = Default::default();
    let mut recv_msgs: u64 = 0;
    let mut recv_closed_msgs: u64 = 0;
    let mut recv_empty: u64 = 0;
    let mut next_receive = Instant::now();
    let mut last_server_stats = pollserve::ServerStats::default();

    loop {
        if drop_at > 0 && started.elapsed() >= Duration::from_millis(drop_at) {
            let queued_before = server.stats().sender_queued;
            let t = Instant::now();
            drop(server);
            let drop_ms = t.elapsed().as_secs_f64() * 1e3;
            let (rss0, _) = proc_status();
            std::thread::sleep(Duration::from_millis(drop_linger));
            let (rss1, hwm) = proc_status();
            let line = format!(
                "{{\"dropped\":1,\"sender_queued_at_drop\":{},\"drop_ms\":{:.2},\"rss_kb_after_drop\":{},\"rss_kb_after_linger\":{},\"hwm_kb\":{},\"sender_sent\":{},\"sender_refused\":{},\"sender_gone\":{},\"sender_done\":{}}}\n",
                queued_before,
                drop_ms,
                rss0,
                rss1,
                hwm,
                sender_queued.load(Ordering::Relaxed),
                sender_refused.load(Ordering::Relaxed),
                sender_gone.load(Ordering::Relaxed),
                sender_done.load(Ordering::Relaxed),
            );
            if let Some(path) = &stats_file {
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            eprint!("{line}");
            return Ok(());
        }
        let now = Instant::now();
        let mut wait = Duration::from_millis(10);
        if bcast_ms > 0 && seq < bcast_max {
            wait = wait.min(next_bcast.saturating_duration_since(now));
        }
        let t0 = Instant::now();
        let activity = server.poll(&mut app, wait)?;
        let poll_ms = t0.elapsed().as_secs_f64() * 1e3;
        max_poll_ms = max_poll_ms.max(poll_ms);
        polls += 1;
        closed_total += activity.closed as u64;
        accepted_conns += activity.accepted as u64;
        let t1 = Instant::now();

        let ready = server.ws_ready().to_vec();
        for id in ready {
            let is_chat = app.chat_ids.contains(&id);
            if is_chat {
                while let Some(message) = server.ws(id).receive() {
                    chat_received += 1;
                    let group = app.chat;
                    chat_fanout += match &message {
                        Message::Text(t) => server.group(group).broadcast_text(t),
                        Message::Binary(b) => server.group(group).broadcast_binary(b),
                    } as u64;
                }
                if server.ws(id).is_closed() {
                    app.chat_ids.remove(&id);
                }
            } else if receive_count {
                recv_pending.push_back(id);
            } else if receive {
                while server.ws(id).receive().is_some() {}
            }
        }
        if receive_count && Instant::now() >= next_receive {
            next_receive = Instant::now() + Duration::from_millis(receive_every);
            let mut taken = 0;
            while taken < receive_batch {
                let Some(id) = recv_pending.pop_front() else {
                    break;
                };
                taken += 1;
                let mut got = 0u64;
                while server.ws(id).receive().is_some() {
                    got += 1;
                }
                recv_msgs += got;
                if server.ws(id).is_closed() {
                    recv_closed_msgs += got;
                }
                if got == 0 {
                    recv_empty += 1;
                }
            }
        }

        if !stalled && started.elapsed() >= Duration::from_millis(stall_at) {
            stalled = true;
            std::thread::sleep(Duration::from_millis(stall_ms));
        }
        let now = Instant::now();
        if bcast_ms > 0 && seq < bcast_max && now >= next_bcast {
            for _ in 0..bcast_burst {
                let size = if bcast_sizes.is_empty() {
                    bcast_size
                } else {
                    bcast_sizes[(seq as usize) % bcast_sizes.len()]
                };
                message(bcast_tag, seq, size, &mut text);
                let all = app.all;
                if bcast_ws {
                    accepted_total += if bcast_list {
                        if bcast_binary {
                            server.broadcast_binary(&app.sockets, text.as_bytes())
                        } else {
                            server.broadcast_text(&app.sockets, &text)
                        }
                    } else if bcast_binary {
                        server.group(all).broadcast_binary(text.as_bytes())
                    } else {
                        server.group(all).broadcast_text(&text)
                    } as u64;
                }
                if bcast_sse {
                    let event = SseEvent::new(&text);
                    accepted_total += if bcast_list {
                        server.broadcast_event(&app.sse, &event)
                    } else {
                        server.group(all).broadcast_event(&event)
                    } as u64;
                }
                if bcast_stream {
                    text.push('\n');
                    accepted_total += if bcast_list {
                        server.broadcast_chunk(&app.streams, text.as_bytes())
                    } else {
                        server.group(all).broadcast_chunk(text.as_bytes())
                    } as u64;
                }
                if group_bcast {
                    for (n, g) in app.groups.clone().into_iter().enumerate() {
                        let m = format!("g{n}:{seq:010}T{:019}|", unix_ns());
                        server.group(g).broadcast_text(&m);
                    }
                }
                seq += 1;
            }
            next_bcast += tick;
            if next_bcast < now {
                next_bcast = now + tick;
            }
        }
        max_work_ms = max_work_ms.max(t1.elapsed().as_secs_f64() * 1e3);

        if now >= next_stats {
            next_stats = now + stats_every;
            // Forget closed ids of the lists (the groups do it themselves).
            app.sockets.retain(|&id| !server.ws(id).is_closed());
            app.sse.retain(|&id| !server.sse(id).is_closed());
            app.streams.retain(|&id| !server.stream(id).is_closed());
            // `Server::stats` walks every connection and every frame queued
            // on it: timed, as it is part of what this loop costs.
            let t_stats = Instant::now();
            let s = if stats_full {
                let s = server.stats();
                last_server_stats = s.clone();
                s
            } else {
                let mut s = pollserve::ServerStats::default();
                s.connections = server.connection_count();
                s
            };
            let stats_call_ms = t_stats.elapsed().as_secs_f64() * 1e3;
            let (rss, hwm) = proc_status();
            let all = app.all;
            let chat = app.chat;
            let glens: Vec<String> = app
                .groups
                .clone()
                .into_iter()
                .map(|g| server.group(g).len().to_string())
                .collect();
            app.stats_json = format!(
                "{{\"t\":{:.3},\"conns\":{},\"input_buffered\":{},\"output_queued\":{},\
                 \"output_buffered\":{},\"rss_kb\":{},\"hwm_kb\":{},\"all\":{},\"chat\":{},\
                 \"groups\":[{}],\"sockets\":{},\"sse\":{},\"streams\":{},\"seq\":{},\
                 \"accepted_total\":{},\"chat_received\":{},\"chat_fanout\":{},\
                 \"sender_queued\":{},\"sender_refused\":{},\"polls\":{},\"max_poll_ms\":{:.2},\"max_work_ms\":{:.2},\
                 \"closed\":{},\"accepted_conns\":{},\"joined\":{},\"stats_call_ms\":{:.2},\
                 \"closed_ws\":{},\"closed_ws_dropped\":{},\"srv_sender_queued\":{},\"recv_msgs\":{},\
                 \"recv_closed_msgs\":{},\"recv_empty\":{},\"recv_pending\":{},\"conn_count\":{}}}",
                unix_ns() as f64 / 1e9,
                s.connections,
                s.input_buffered,
                s.output_queued,
                s.output_buffered,
                rss,
                hwm,
                server.group(all).len(),
                server.group(chat).len(),
                glens.join(","),
                app.sockets.len(),
                app.sse.len(),
                app.streams.len(),
                seq,
                accepted_total,
                chat_received,
                chat_fanout,
                sender_queued.load(Ordering::Relaxed),
                sender_refused.load(Ordering::Relaxed),
                polls,
                max_poll_ms,
                max_work_ms,
                closed_total,
                accepted_conns,
                app.joined,
                stats_call_ms,
                last_server_stats.closed_websockets,
                last_server_stats.closed_websockets_dropped,
                last_server_stats.sender_queued,
                recv_msgs,
                recv_closed_msgs,
                recv_empty,
                recv_pending.len(),
                server.connection_count(),
            );
            max_poll_ms = 0.0;
            max_work_ms = 0.0;
            if let Some(path) = &stats_file {
                let mut line = app.stats_json.clone();
                line.push('\n');
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }
}

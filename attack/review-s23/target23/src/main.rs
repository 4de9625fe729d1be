//! target23: echo + limit endpoints + fan-out, configured from the environment.
//!
//! Routes:
//! * `/hello`            plain HTTP 200 (probe)
//! * `/ws`               echo (text as text, binary as binary), deflate if DEFLATE=1 (ctx if DEFLATE=ctx)
//! * `/ws/small`         echo with small limits: 1000-byte messages, 4 fragments, 2 s fragment timeout,
//!                       min rate 1000 B/s, idle 6 s, keepalive 3 s / 2 s timeout, deflate offered
//! * `/ws/sub`           joins the `ws` group (broadcasts); echoes what it gets too
//! * `/events`           SSE, joins the `sse` group
//! Env: PORT, BCAST_MS (0 = none), BCAST_SIZE, BCAST_BIN (1: ws broadcast binary), SSE_SEND_BUF,
//!      WS_SEND_BUF, SENDER_MS (a thread group_sends every N ms), STATS_FILE, MAX_CONN, NO_RECEIVE=1.
use pollserve::group::GroupId;
use pollserve::sse::{SseEvent, SseId, SseOptions};
use pollserve::ws::{CloseCode, DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Method, Response, Server, ServerConfig};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Default)]
struct App {
    new_sse: Vec<SseId>,
    new_sub: Vec<WsId>,
}

fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn main() -> Result<(), pollserve::Error> {
    let port = env_usize("PORT", 9023) as u16;
    let deflate_mode = std::env::var("DEFLATE").unwrap_or_default();
    let deflate = match deflate_mode.as_str() {
        "1" => Some(DeflateOptions::default()),
        "ctx" => Some(DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..DeflateOptions::default()
        }),
        _ => None,
    };
    let mut server = Server::<App>::with_config(
        ServerConfig::default()
            .max_connections(env_usize("MAX_CONN", 20_000))
            .max_inflated_bytes(env_usize("MAX_INFLATED", 64 << 20))
            .inflate_pause_timeout(Duration::from_millis(env_usize("PAUSE_MS", 2000) as u64))
            .send_buffer_size(std::env::var("SNDBUF").ok().and_then(|v| v.parse().ok())),
    );
    let mut echo = WsOptions::default();
    echo.deflate = deflate.clone();
    echo.protocol.keepalive_interval = None;
    echo.max_send_buffer = env_usize("WS_SEND_BUF", echo.max_send_buffer);
    let echo2 = echo.clone();
    server.route("/ws", Method::GET, move |req, _| {
        Ok(req.websocket().options(echo2.clone()).accept()?.0)
    })?;
    let mut small = WsOptions::default();
    small.deflate = Some(DeflateOptions::default());
    small.protocol.max_message_size = 1000;
    small.protocol.max_fragments = 4;
    small.protocol.fragment_timeout = Some(Duration::from_secs(2));
    small.protocol.min_message_rate = 1000;
    small.protocol.idle_timeout = Some(Duration::from_secs(6));
    small.protocol.keepalive_interval = Some(Duration::from_secs(3));
    small.protocol.keepalive_timeout = Duration::from_secs(2);
    small.max_receive_buffer = 4000;
    if let Some(n) = std::env::var("SMALL_MAX_MSG").ok().and_then(|v| v.parse().ok()) {
        small.protocol.max_message_size = n;
        small.max_receive_buffer = 4 * n;
    }
    server.route("/ws/small", Method::GET, move |req, _| {
        Ok(req.websocket().options(small.clone()).accept()?.0)
    })?;
    let mut sub = echo.clone();
    sub.max_send_buffer = env_usize("WS_SEND_BUF", 1 << 20);
    server.route("/ws/sub", Method::GET, move |req, app: &mut App| {
        let (resp, id) = req.websocket().options(sub.clone()).accept()?;
        app.new_sub.push(id);
        Ok(resp)
    })?;
    let sse_opts = SseOptions {
        max_send_buffer: env_usize("SSE_SEND_BUF", 1 << 20),
        ..SseOptions::default()
    };
    server.route("/events", Method::GET, move |req, app: &mut App| {
        let (resp, id) = req.accept_sse_with(sse_opts.clone())?;
        app.new_sse.push(id);
        Ok(resp)
    })?;
    server.route("/hello", Method::GET, |_req, _| Ok(Response::text("hello\n")))?;
    server.start("127.0.0.1", port)?;
    eprintln!("target23 listening on {port}");

    let sse_group: GroupId = server.new_group();
    let ws_group: GroupId = server.new_group();
    let bcast_ms = env_usize("BCAST_MS", 0) as u64;
    let bcast_size = env_usize("BCAST_SIZE", 100);
    let bcast_sizes: Vec<usize> = std::env::var("BCAST_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    let bcast_bin = env_usize("BCAST_BIN", 1) == 1;
    let no_receive = env_usize("NO_RECEIVE", 0) == 1;
    let sender_ms = env_usize("SENDER_MS", 0) as u64;
    if sender_ms > 0 {
        let sender = server.sender()?;
        let g = ws_group;
        let size = bcast_size;
        std::thread::spawn(move || {
            let mut seq: u64 = 0;
            loop {
                std::thread::sleep(Duration::from_millis(sender_ms));
                seq += 1;
                let head = format!("R{seq:010}T{:019}|", now_ns());
                let mut body = head.into_bytes();
                while body.len() < size {
                    body.push(b'a' + (body.len() % 26) as u8);
                }
                if sender.group_send(g, Message::Binary(body)).is_err() {
                    // full or gone: keep going
                }
            }
        });
    }
    let stats_file = std::env::var("STATS_FILE").ok();
    let mut stats_out = stats_file.map(|p| std::fs::File::create(p).expect("stats file"));
    let mut next_stats = Instant::now();
    let mut next_bcast = Instant::now();
    let mut seq: u64 = 0;
    let mut app = App::default();
    let mut ready: Vec<WsId> = Vec::new();
    let mut slot = Message::Binary(Vec::new());
    let mut longest_poll = Duration::ZERO;
    let mut backlog: Vec<WsId> = Vec::new();
    let log_closes = env_usize("LOG_CLOSES", 0) == 1;
    let mut last_recv = Instant::now();
    let mut longest_work = Duration::ZERO;
    loop {
        let t0 = Instant::now();
        let mut timeout = Duration::from_millis(100);
        if bcast_ms > 0 {
            timeout = timeout.min(next_bcast.saturating_duration_since(t0));
        }
        server.poll(&mut app, timeout)?;
        let t1 = Instant::now();
        longest_poll = longest_poll.max(t1 - t0);
        for id in app.new_sse.drain(..) {
            server.group(sse_group).join(id);
        }
        for id in app.new_sub.drain(..) {
            server.group(ws_group).join(id);
        }
        let recv_every = env_usize("RECV_EVERY_MS", 0) as u64;
        let due = recv_every == 0 || last_recv.elapsed() >= Duration::from_millis(recv_every);
        if !no_receive && !due {
            for &id in server.ws_ready() {
                if !backlog.contains(&id) {
                    backlog.push(id);
                }
            }
        }
        if !no_receive && due {
            last_recv = Instant::now();
            ready.clear();
            ready.extend_from_slice(server.ws_ready());
            for id in backlog.drain(..) {
                if !ready.contains(&id) {
                    ready.push(id);
                }
            }
            for &id in &ready {
                if log_closes && server.ws(id).is_closed() {
                    let st = server.ws(id).close_status();
                    eprintln!("closed {id}: {st:?}");
                }
                while server.ws(id).receive_into(&mut slot) {
                    if let Message::Text(t) = &slot {
                        if let Some(reason) = t.strip_prefix("!close ") {
                            let reason = reason.to_owned();
                            let _ = server.ws(id).close(CloseCode::new(4000).unwrap(), &reason);
                            continue;
                        }
                    }
                    let _ = server.ws(id).send(&slot);
                }
            }
        }
        let now = Instant::now();
        if bcast_ms > 0 && now >= next_bcast {
            seq += 1;
            let head = format!("S{seq:010}T{:019}|", now_ns());
            let mut body = head.into_bytes();
            let size = if bcast_sizes.is_empty() {
                bcast_size
            } else {
                bcast_sizes[(seq as usize) % bcast_sizes.len()]
            };
            while body.len() < size {
                body.push(b'a' + (body.len() % 26) as u8);
            }
            let text = String::from_utf8(body).unwrap_or_default();
            server.group(sse_group).broadcast_event(&SseEvent::new(&text));
            if bcast_bin {
                server.group(ws_group).broadcast_binary(text.as_bytes());
            } else {
                server.group(ws_group).broadcast_text(&text);
            }
            next_bcast += Duration::from_millis(bcast_ms);
            if next_bcast < now {
                next_bcast = now + Duration::from_millis(bcast_ms);
            }
        }
        longest_work = longest_work.max(t1.elapsed());
        if let Some(f) = stats_out.as_mut() {
            if Instant::now() >= next_stats {
                let st = server.stats();
                let (r, h) = rss();
                let _ = writeln!(
                    f,
                    "{{\"t\":{},\"conns\":{},\"closed_ws\":{},\"in_buf\":{},\"out_q\":{},\"out_buf\":{},\"inflated\":{},\"sender_q\":{},\"sse_members\":{},\"ws_members\":{},\"rss_kb\":{},\"hwm_kb\":{},\"poll_ms\":{:.2},\"work_ms\":{:.2}}}",
                    now_ns() / 1_000_000,
                    st.connections,
                    st.closed_websockets,
                    st.input_buffered,
                    st.output_queued,
                    st.output_buffered,
                    st.inflated_held,
                    st.sender_queued,
                    server.group(sse_group).len(),
                    server.group(ws_group).len(),
                    r,
                    h,
                    longest_poll.as_secs_f64() * 1e3,
                    longest_work.as_secs_f64() * 1e3,
                );
                let _ = f.flush();
                longest_poll = Duration::ZERO;
                longest_work = Duration::ZERO;
                next_stats = Instant::now() + Duration::from_millis(500);
            }
        }
    }
}

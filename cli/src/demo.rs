//! `pollserve demo`: the showcase dashboard and the endpoint external tests
//! (Autobahn, benchmarks, the browser test) point at.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pollserve::group::GroupId;
use pollserve::sse::SseEvent;
use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{Error, HttpError, Method, Request, Response, Server, ServerConfig};

const PAGE: &str = include_str!("demo.html");

/// Longest chat line accepted, in bytes.
const CHAT_MAX_MESSAGE: usize = 4096;

/// Flags of `pollserve demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Largest message accepted on /ws/echo, in bytes (Autobahn sends 16 MiB).
    #[arg(long, default_value_t = 16 << 20)]
    ws_max_message: usize,
    /// Most fragments per message on /ws/echo.
    #[arg(long, default_value_t = 1 << 20)]
    ws_max_fragments: usize,
    /// Longest pause between fragments of a message on /ws/echo, in seconds.
    #[arg(long, default_value_t = 30.0)]
    ws_fragment_timeout: f64,
    /// Decline clients' permessage-deflate offers on /ws/echo and /ws/chat
    /// (accepted by default: browsers offer it on every WebSocket).
    #[arg(long)]
    no_deflate: bool,
    /// With compression: both sides keep their compression context between
    /// messages (better ratio on similar messages; a compressor of a few
    /// hundred KiB and an inflate window per socket) instead of resetting
    /// it after each one.
    #[arg(long, conflicts_with = "no_deflate")]
    deflate_context_takeover: bool,
    /// No access log.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
}

/// Names kept for the dashboard; older uploads only count in the totals.
const RECENT_UPLOADS: usize = 5;
/// Longest file name shown, in characters; longer ones are cut and end in `…`.
const UPLOAD_NAME_CHARS: usize = 48;

/// What the dashboard shows about uploads. Every viewer is sent the status
/// once a second, so anonymous uploads may add only a bounded amount to it:
/// 20 kept names of 8 KB each made every `stats` event 158 KB per viewer.
#[derive(Default)]
struct Uploads {
    count: u64,
    bytes: u64,
    /// Name (shortened) and size of the newest files, newest last.
    recent: VecDeque<(String, usize)>,
}

impl Uploads {
    fn add(&mut self, name: &str, size: usize) {
        self.count += 1;
        self.bytes += size as u64;
        if self.recent.len() == RECENT_UPLOADS {
            self.recent.pop_front();
        }
        let shown = match name.char_indices().nth(UPLOAD_NAME_CHARS) {
            Some((cut, _)) => format!("{}…", &name[..cut]),
            None => name.to_owned(),
        };
        self.recent.push_back((shown, size));
    }

    fn to_json(&self) -> serde_json::Value {
        let recent: Vec<_> = self
            .recent
            .iter()
            .map(|(name, size)| serde_json::json!({ "name": name, "size": size }))
            .collect();
        serde_json::json!({ "count": self.count, "bytes": self.bytes, "recent": recent })
    }
}

struct Demo {
    echo_options: WsOptions,
    deflate: Option<DeflateOptions>,
    echo: Vec<WsId>,
    /// The chat's WebSockets, joined when accepted; closed ones leave by
    /// themselves.
    chat: GroupId,
    /// The dashboards' event streams, likewise.
    events: GroupId,
    /// Members of `chat` and `events` after the last poll, for the status
    /// (handlers have the state, not the server).
    chat_members: usize,
    event_streams: usize,
    uploads: Uploads,
    requests: u64,
    color: String,
    started: Instant,
    messages: u64,
    /// A colour change waiting to be pushed to every page.
    color_changed: bool,
}

pub fn run(args: DemoArgs) -> Result<(), Error> {
    crate::init_log(args.quiet);
    let mut echo_options = WsOptions::default();
    echo_options.protocol.max_message_size = args.ws_max_message;
    echo_options.protocol.max_fragments = args.ws_max_fragments;
    echo_options.protocol.fragment_timeout =
        (args.ws_fragment_timeout > 0.0).then(|| Duration::from_secs_f64(args.ws_fragment_timeout));
    // Echo replies must fit whatever the endpoint accepts.
    echo_options.max_send_buffer = echo_options.max_send_buffer.max(2 * args.ws_max_message);
    echo_options.max_receive_buffer = echo_options.max_receive_buffer.max(args.ws_max_message);
    let deflate = (!args.no_deflate).then(|| DeflateOptions {
        server_no_context_takeover: !args.deflate_context_takeover,
        client_no_context_takeover: !args.deflate_context_takeover,
        ..DeflateOptions::default()
    });
    echo_options.deflate = deflate;

    let mut server = Server::<Demo>::with_config(ServerConfig::default().max_body_size(32 << 20));
    server.route("/", Method::GET, |_, _| {
        Ok(Response::from_static(
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
        ))
    })?;
    server.route("/ws/echo", Method::GET, |req, app: &mut Demo| {
        let (response, id) = req.websocket().options(app.echo_options.clone()).accept()?;
        app.echo.push(id);
        Ok(response)
    })?;
    server.route("/ws/chat", Method::GET, |req, app: &mut Demo| {
        // Every chat line goes to every viewer: keep lines short (a longer
        // one closes its sender with 1009) and each viewer's queue small.
        let mut options = WsOptions::default();
        options.protocol.max_message_size = CHAT_MAX_MESSAGE;
        options.max_receive_buffer = 16 * CHAT_MAX_MESSAGE;
        options.max_send_buffer = 64 * CHAT_MAX_MESSAGE;
        options.deflate = app.deflate;
        let (response, id) = req.websocket().options(options).accept()?;
        req.outbox().join(app.chat, id);
        Ok(response)
    })?;
    server.route("/api/status", Method::GET, |_, app: &mut Demo| {
        Response::json(&status(app))
    })?;
    server.route("/events", Method::GET, |req, app: &mut Demo| {
        let (response, id) = req.accept_sse()?;
        req.outbox().join(app.events, id);
        Ok(response)
    })?;
    server.route("/upload", Method::POST, |req, app: &mut Demo| {
        let form = req.form()?;
        let mut saved = Vec::new();
        for file in form.all_files() {
            let name = file.safe_filename().unwrap_or("upload");
            // The uploader alone gets the full names back.
            saved.push(serde_json::json!({ "name": name, "size": file.data.len() }));
            app.uploads.add(name, file.data.len());
        }
        Response::json(&serde_json::json!({ "saved": saved }))
    })?;
    server.route(
        "/api/color",
        [Method::GET, Method::POST],
        |req, app: &mut Demo| {
            if req.method() == Method::POST {
                app.color = parse_color(req)?;
                app.color_changed = true;
            }
            Response::json(&serde_json::json!({ "color": app.color }))
        },
    )?;

    let (addr, scheme, mut cert_watch) = args.tls.start(&mut server, &args.host, args.port)?;
    let ws = if scheme == "https" { "wss" } else { "ws" };
    crate::print_out(format_args!(
        "pollserve demo on {scheme}://{addr}/  (WebSocket echo: {ws}://{addr}/ws/echo)"
    ));
    let mut app = Demo {
        echo_options,
        deflate,
        echo: Vec::new(),
        chat: server.new_group(),
        events: server.new_group(),
        chat_members: 0,
        event_streams: 0,
        color: "#3366ff".into(),
        uploads: Uploads::default(),
        requests: 0,
        started: Instant::now(),
        messages: 0,
        color_changed: false,
    };
    let mut next_tick = Instant::now();
    let mut tick: u64 = 0;
    let terminate = crate::termination_requested()?;
    while !terminate.load(Ordering::SeqCst) {
        let activity = server.poll(&mut app, Duration::from_millis(250))?;
        if let Some(watch) = cert_watch.as_mut() {
            watch.check(&mut server);
        }
        app.requests += activity.responses as u64;
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            tick += 1;
            let data = status(&app).to_string();
            let id = tick.to_string();
            server
                .group(app.events)
                .broadcast_event(&SseEvent::new(&data).event("stats").id(&id));
        }
        for &id in &app.echo {
            while let Some(message) = server.ws(id).receive() {
                app.messages += 1;
                let _ = server.ws(id).send(&message);
            }
        }
        let mut said = Vec::new();
        for id in server.ws_ready().to_vec() {
            if !server.group(app.chat).contains(id) {
                continue;
            }
            while let Some(message) = server.ws(id).receive() {
                if let Message::Text(text) = message {
                    app.messages += 1;
                    said.push(text);
                }
            }
        }
        for text in said {
            let line = serde_json::json!({ "type": "chat", "text": text }).to_string();
            server.group(app.chat).broadcast_text(&line);
        }
        if app.color_changed {
            app.color_changed = false;
            let line = serde_json::json!({ "type": "color", "color": app.color }).to_string();
            server.group(app.chat).broadcast_text(&line);
            server
                .group(app.events)
                .broadcast_event(&SseEvent::new(&app.color).event("color"));
        }
        app.echo.retain(|&id| !server.ws(id).is_closed());
        app.chat_members = server.group(app.chat).len();
        app.event_streams = server.group(app.events).len();
    }
    crate::shut_down(&mut server, &mut app)
}

fn status(app: &Demo) -> serde_json::Value {
    serde_json::json!({
        "uptime_s": app.started.elapsed().as_secs(),
        "requests": app.requests,
        "websockets": { "echo": app.echo.len(), "chat": app.chat_members },
        "event_streams": app.event_streams,
        "messages": app.messages,
        "color": app.color,
        "uploads": app.uploads.to_json(),
    })
}

/// `{"color": "#rrggbb"}` or `{"r": .., "g": .., "b": ..}`.
fn parse_color(req: &Request) -> Result<String, HttpError> {
    let body: serde_json::Value = req.json()?;
    if let Some(c) = body.get("color").and_then(|c| c.as_str()) {
        let hex = c.strip_prefix('#').unwrap_or(c);
        if hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(format!("#{}", hex.to_ascii_lowercase()));
        }
        return Err(HttpError::bad_request("color must be #rrggbb"));
    }
    let channel = |k: &str| body.get(k).and_then(|v| v.as_u64()).filter(|&v| v <= 255);
    match (channel("r"), channel("g"), channel("b")) {
        (Some(r), Some(g), Some(b)) => Ok(format!("#{r:02x}{g:02x}{b:02x}")),
        _ => Err(HttpError::bad_request(
            "expected {\"color\": \"#rrggbb\"} or {\"r\", \"g\", \"b\"}",
        )),
    }
}

/// Guards every route and static file of `server` with HTTP Basic `user:pass`.
pub fn require_basic_auth<S>(server: &mut Server<S>, user_pass: &str) -> Result<(), Error> {
    let Some((user, pass)) = user_pass.split_once(':') else {
        return Err(Error::InvalidArgument(format!(
            "--auth expects USER:PASS, got {user_pass:?}"
        )));
    };
    server.require_authentication(pollserve::Authentication::new("pollserve").basic(user, pass));
    Ok(())
}

//! A multi-room chat with a live ticker, built on groups: pollserve's own
//! example of `Server::new_group`, `Request::outbox`, `GroupHandle` and a
//! cross-thread `Sender`.
//!
//! - `GET /ws/<room>` (rooms `0` to `ROOMS - 1`) opens a WebSocket that the
//!   upgrade handler joins to its room and to the `news` group, through
//!   [`Request::outbox`](pollserve::Request::outbox). `?deflate=1` turns
//!   permessage-deflate on for that client. The first message is
//!   `welcome <token> <room>`.
//! - A text message is chat: everyone in the room (the sender too) gets
//!   `chat <room> <seq> <token> <text>`, `seq` counting the room's messages
//!   from 1. Event streams joined to the room get the same line as a `chat`
//!   event. A binary message goes to the room's WebSockets unchanged.
//! - Text starting with `/` is a command, answered to the sender only:
//!   `/join R` and `/leave R` (another room; answer `joined R <bool> <len>`,
//!   `left R <bool> <len>`), `/watch T` (join the event stream whose
//!   `hello` said `T` to this client's room: `watch T <bool> <len>`),
//!   `/count R` (`count R <len>`), `/remove R` (removes the room's group:
//!   its members stay connected but hear nothing more; `removed R false`).
//! - `GET /ticker` is an event stream in the `ticker` group; `?room=R` also
//!   joins it to room `R`. Its first event is `hello <token>`.
//! - Five times a second the main loop pushes `tick <room> <n> <reading>` to
//!   every room's WebSockets and `tick <n> <reading>` as a `tick` event to
//!   the `ticker` group. A background thread sends `news <n>` to the `news`
//!   group through a `Sender` four times a second.
//! - `GET /stats` gives the member count of every group and what the server
//!   holds, as JSON.
//!
//! Clients that disconnect leave every group by themselves; the program only
//! forgets its own per-client record (`App::clients`) when it sees them
//! closed.
//!
//! `cargo run --example rooms [PORT] [ROOMS]` (defaults 5000 and 8), then
//! e.g. `websocat ws://127.0.0.1:5000/ws/3` and
//! `curl -N http://127.0.0.1:5000/ticker`.
use pollserve::group::GroupId;
use pollserve::sse::{SseEvent, SseId};
use pollserve::ws::{DeflateOptions, Message, WsId, WsOptions};
use pollserve::{HttpError, Method, Request, Response, Server, StatusCode};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How often the ticker pushes a reading.
const TICK: Duration = Duration::from_millis(200);
/// How often the background thread publishes news.
const NEWS: Duration = Duration::from_millis(250);
/// How often the program prunes its own records of closed clients and
/// refreshes the server's memory figures (`Server::stats` walks every
/// connection, so not on every poll).
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// What the program keeps about one WebSocket client.
struct Client {
    room: usize,
    token: u64,
}

/// The application state every handler borrows.
struct App {
    rooms: Vec<GroupId>,
    ticker: GroupId,
    news: GroupId,
    /// Every open WebSocket, with its room and token.
    clients: HashMap<WsId, Client>,
    /// Event streams by the token their `hello` event named (for `/watch`).
    streams: HashMap<u64, SseId>,
    next_token: u64,
    /// The last chat sequence number of each room.
    seq: Vec<u64>,
    /// Group sizes and server figures as of the last loop round, for
    /// `/stats` (a handler cannot reach the server: it is busy polling).
    snapshot: Snapshot,
}

/// What `/stats` reports.
#[derive(Default)]
struct Snapshot {
    rooms: Vec<usize>,
    ticker: usize,
    news: usize,
    connections: usize,
    input_buffered: usize,
    output_queued: usize,
    output_buffered: usize,
}

fn room_of(req: &Request, rooms: usize) -> Result<usize, HttpError> {
    req.param("room")
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|&r| r < rooms)
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "no such room"))
}

fn main() -> Result<(), pollserve::Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let port = args.next().and_then(|p| p.parse().ok()).unwrap_or(5000);
    let room_count = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8usize)
        .max(1);

    let mut server = Server::<App>::new();
    let rooms: Vec<GroupId> = (0..room_count).map(|_| server.new_group()).collect();
    let ticker = server.new_group();
    let news = server.new_group();

    server.route("/ws/<room>", Method::GET, |req, app: &mut App| {
        let room = room_of(req, app.rooms.len())?;
        let (response, ws) = if req.query().get("deflate") == Some("1") {
            let options = WsOptions {
                deflate: Some(DeflateOptions::default()),
                ..WsOptions::default()
            };
            req.websocket().options(options).accept()?
        } else {
            req.accept_websocket()?
        };
        let token = app.next_token;
        app.next_token += 1;
        app.clients.insert(ws, Client { room, token });
        let outbox = req.outbox();
        // Carried out in this order once the 101 is out: the welcome comes
        // before anything the groups send.
        outbox.send_text(ws, &format!("welcome {token} {room}"));
        outbox.join(app.rooms[room], ws);
        outbox.join(app.news, ws);
        Ok(response)
    })?;
    server.route("/ticker", Method::GET, |req, app: &mut App| {
        let room = match req.query().get("room") {
            Some(r) => Some(
                r.parse::<usize>()
                    .ok()
                    .filter(|&r| r < app.rooms.len())
                    .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "no such room"))?,
            ),
            None => None,
        };
        let (response, sse) = req.accept_sse()?;
        let token = app.next_token;
        app.next_token += 1;
        app.streams.insert(token, sse);
        let outbox = req.outbox();
        let hello = format!("hello {token}");
        // Cannot fail: no line break in the type or id.
        let _ = outbox.send_event(sse, &SseEvent::new(&hello).event("hello"));
        outbox.join(app.ticker, sse);
        if let Some(room) = room {
            outbox.join(app.rooms[room], sse);
        }
        Ok(response)
    })?;
    server.route("/stats", Method::GET, |_req, app: &mut App| {
        let s = &app.snapshot;
        Response::json(&serde_json::json!({
            "rooms": s.rooms,
            "ticker": s.ticker,
            "news": s.news,
            "clients": app.clients.len(),
            "streams": app.streams.len(),
            "connections": s.connections,
            "input_buffered": s.input_buffered,
            "output_queued": s.output_queued,
            "output_buffered": s.output_buffered,
        }))
    })?;

    // The news desk runs on its own thread and reaches the poll loop
    // through a Sender, which wakes it.
    let sender = server.sender()?;
    std::thread::spawn(move || {
        for n in 1u64.. {
            std::thread::sleep(NEWS);
            // A send fails once the server is dropped (or while 64 MiB of
            // sends wait for a loop that stopped polling): then stop.
            if sender
                .group_send(news, Message::Text(format!("news {n}")))
                .is_err()
            {
                break;
            }
        }
    });

    server.start("127.0.0.1", port)?;
    let mut app = App {
        seq: vec![0; rooms.len()],
        rooms,
        ticker,
        news,
        clients: HashMap::new(),
        streams: HashMap::new(),
        next_token: 1,
        snapshot: Snapshot::default(),
    };

    // Reused every round, so the loop allocates nothing per message once
    // warm: the list of ready sockets, the received message, the line sent.
    let mut ready: Vec<WsId> = Vec::new();
    let mut slot = Message::Text(String::new());
    let mut line = String::new();
    let mut tick = 0u64;
    let mut next_tick = Instant::now() + TICK;
    let mut next_housekeeping = Instant::now();
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        server.poll(&mut app, wait)?;

        ready.clear();
        ready.extend_from_slice(server.ws_ready());
        for &id in &ready {
            while server.ws(id).receive_into(&mut slot) {
                handle_message(&mut server, &mut app, id, &slot, &mut line);
            }
            if server.ws(id).is_closed() {
                app.clients.remove(&id);
            }
        }

        let now = Instant::now();
        if now >= next_tick {
            tick += 1;
            next_tick += TICK;
            if next_tick < now {
                next_tick = now + TICK; // fell behind: skip, don't burst
            }
            let reading = 20.0 + 5.0 * (tick as f64 / 10.0).sin();
            for (room, &group) in app.rooms.iter().enumerate() {
                line.clear();
                let _ = write!(line, "tick {room} {tick} {reading:.2}");
                server.group(group).broadcast_text(&line);
            }
            line.clear();
            let _ = write!(line, "tick {tick} {reading:.2}");
            server
                .group(app.ticker)
                .broadcast_event(&SseEvent::new(&line).event("tick"));
        }

        if now >= next_housekeeping {
            next_housekeeping = now + HOUSEKEEPING;
            // Groups forget closed members by themselves; the program's own
            // records need the same.
            app.clients.retain(|&id, _| !server.ws(id).is_closed());
            app.streams.retain(|_, &mut id| !server.sse(id).is_closed());
            let stats = server.stats();
            app.snapshot.connections = stats.connections;
            app.snapshot.input_buffered = stats.input_buffered;
            app.snapshot.output_queued = stats.output_queued;
            app.snapshot.output_buffered = stats.output_buffered;
        }
        app.snapshot.rooms.clear();
        for &group in &app.rooms {
            app.snapshot.rooms.push(server.group(group).len());
        }
        app.snapshot.ticker = server.group(app.ticker).len();
        app.snapshot.news = server.group(app.news).len();
    }
}

/// One message from WebSocket `id`: a command, chat, or binary to relay.
fn handle_message(
    server: &mut Server<App>,
    app: &mut App,
    id: WsId,
    message: &Message,
    line: &mut String,
) {
    let Some(client) = app.clients.get(&id) else {
        return; // pruned already (closed)
    };
    let (room, token) = (client.room, client.token);
    match message {
        Message::Binary(data) => {
            server.group(app.rooms[room]).broadcast_binary(data);
        }
        Message::Text(text) if text.starts_with('/') => {
            let mut words = text.split_whitespace();
            let command = words.next().unwrap_or("");
            let arg = words.next().and_then(|w| w.parse::<u64>().ok());
            let group_arg = arg
                .and_then(|r| usize::try_from(r).ok())
                .and_then(|r| app.rooms.get(r).copied());
            line.clear();
            match (command, arg, group_arg) {
                ("/join", Some(r), Some(group)) => {
                    let joined = server.group(group).join(id);
                    let len = server.group(group).len();
                    let _ = write!(line, "joined {r} {joined} {len}");
                }
                ("/leave", Some(r), Some(group)) => {
                    let left = server.group(group).leave(id);
                    let len = server.group(group).len();
                    let _ = write!(line, "left {r} {left} {len}");
                }
                ("/remove", Some(r), Some(group)) => {
                    // The room's members stay connected; the id now names
                    // an empty group that nobody can join.
                    server.group(group).remove();
                    let exists = server.group(group).exists();
                    let _ = write!(line, "removed {r} {exists}");
                }
                ("/count", Some(r), Some(group)) => {
                    let len = server.group(group).len();
                    let _ = write!(line, "count {r} {len}");
                }
                ("/watch", Some(t), _) => {
                    let group = app.rooms[room];
                    let joined = match app.streams.get(&t) {
                        Some(&sse) => server.group(group).join(sse),
                        None => false,
                    };
                    let len = server.group(group).len();
                    let _ = write!(line, "watch {t} {joined} {len}");
                }
                _ => {
                    let _ = write!(line, "error unknown command");
                }
            }
            server.ws(id).send_text_quiet(line);
        }
        Message::Text(text) => {
            app.seq[room] += 1;
            line.clear();
            // One copy of the text into the line: the prefix has to precede
            // it in the same message.
            let _ = write!(line, "chat {room} {} {token} ", app.seq[room]);
            line.push_str(text);
            let group = app.rooms[room];
            server.group(group).broadcast_text(line);
            server
                .group(group)
                .broadcast_event(&SseEvent::new(line).event("chat"));
        }
    }
}

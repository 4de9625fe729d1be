//! fastwebsockets echo peer (hyper 1 upgrade), the pattern of its
//! `echo_server` example; over TCP or (`--tls`) behind `tokio-rustls` with
//! pollserve's own rustls configuration (`ring` provider).
//!
//! `fws_echo PORT [st|mt] [--tls CERT KEY]` — `st` (default) is a
//! current-thread runtime.
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = handle_client(fut).await;
    });
    Ok(response)
}

async fn serve<S>(stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(server_upgrade))
        .with_upgrades()
        .await;
}

fn main() {
    let args = pollserve_bench::peer_args("fws_echo PORT [st|mt] [--tls CERT KEY]");
    match args.tls {
        None => pollserve_bench::serve_tcp(args.port, args.mt, serve),
        Some((cert, key)) => {
            let config = pollserve_bench::rustls_server_config(&cert, &key);
            pollserve_bench::serve_tls(args.port, args.mt, config, serve)
        }
    }
}

//! hyper 1.x hello-world peer (HTTP/1.1, keep-alive).
//!
//! `hyper_hello PORT [st|mt]` — `st` (default) is a current-thread runtime.
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(
            pollserve_bench::HELLO.as_bytes(),
        )))
        .expect("response"))
}

fn main() {
    let (port, mt) = pollserve_bench::port_and_mode("hyper_hello PORT [st|mt]");
    pollserve_bench::serve_tcp(port, mt, |stream| async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(hello))
            .await;
    });
}

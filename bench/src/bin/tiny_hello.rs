//! tiny_http hello-world peer: one thread answers every request.
//!
//! `tiny_hello PORT`
fn main() {
    let (port, _) = pollserve_bench::port_and_mode("tiny_hello PORT");
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("bind");
    let header =
        tiny_http::Header::from_bytes("Content-Type", "text/plain; charset=utf-8").expect("header");
    for request in server.incoming_requests() {
        let response =
            tiny_http::Response::from_string(pollserve_bench::HELLO).with_header(header.clone());
        let _ = request.respond(response);
    }
}

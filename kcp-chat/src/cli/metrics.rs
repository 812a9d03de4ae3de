//! `--metrics ADDR`: the server's counters over HTTP in the Prometheus text format,
//! from a thread of its own (tiny_http). `GET /metrics` (or `/`) asks the main loop
//! for a snapshot; anything else is 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use kcp_chat::server::metrics::CONTENT_TYPE;
use tiny_http::{Header, Method, Response, Server};

use super::events::Event;

/// How long a scrape waits for the main loop's snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running metrics endpoint. [`stop`](Self::stop) ends its thread.
pub(super) struct MetricsServer {
    http: Arc<Server>,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and answers scrapes with what the main loop sends back for
    /// [`Event::Scrape`].
    ///
    /// # Errors
    /// The address cannot be bound.
    pub(super) fn start(addr: SocketAddr, events: Sender<Event>) -> anyhow::Result<Self> {
        let http = Server::http(addr)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("serving metrics on {addr}"))?;
        let addr = http
            .server_addr()
            .to_ip()
            .context("the metrics socket's address")?;
        let content_type = Header::from_bytes("Content-Type", CONTENT_TYPE)
            .map_err(|()| anyhow::anyhow!("a bad Content-Type header"))?;
        let http = Arc::new(http);
        let serving = Arc::clone(&http);
        let thread = std::thread::Builder::new()
            .name("kcp-chat-metrics".into())
            .spawn(move || serve(&serving, &events, &content_type))
            .context("starting the metrics thread")?;
        Ok(Self { http, thread, addr })
    }

    /// The bound address (with the port picked, if 0 was asked).
    pub(super) const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub(super) fn stop(self) {
        self.http.unblock();
        let _ = self.thread.join();
    }
}

/// Answers requests until the server is unblocked or the main loop is gone.
fn serve(http: &Server, events: &Sender<Event>, content_type: &Header) {
    for request in http.incoming_requests() {
        let wanted = *request.method() == Method::Get && matches!(request.url(), "/metrics" | "/");
        let response = if wanted {
            let (reply, snapshot) = mpsc::sync_channel(1);
            if events.send(Event::Scrape(reply)).is_err() {
                return;
            }
            match snapshot.recv_timeout(SNAPSHOT_TIMEOUT) {
                Ok(text) => Response::from_string(text).with_header(content_type.clone()),
                Err(_) => Response::from_string("server busy\n").with_status_code(503),
            }
        } else {
            Response::from_string("try /metrics\n").with_status_code(404)
        };
        let _ = request.respond(response);
    }
}

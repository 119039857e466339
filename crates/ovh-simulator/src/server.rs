//! The accept loop: HTTP/1.1 connections served by hyper around the axum router, so a fault
//! can close a connection without any answer (the service returns `Err` for a response marked
//! [`DropConnection`], and hyper then closes the connection).
use super::Simulator;
use super::faults::DropConnection;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

pub async fn serve(sim: Simulator, listener: TcpListener) -> std::io::Result<()> {
    let router = sim.router();
    // Dropping the set (when this future is dropped or aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "simulator accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let router = router.clone();
                async move {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let response = match router.oneshot(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    if response.extensions().get::<DropConnection>().is_some() {
                        Err(std::io::Error::other(
                            "connection dropped by a simulated fault",
                        ))
                    } else {
                        Ok(response)
                    }
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::trace!(%error, "simulator connection ended");
            }
        });
    }
}

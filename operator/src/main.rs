//! `forkr-operator`: reads its settings, waits for the leader lease, serves /metrics and
//! /healthz, and runs the controllers.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use forkr_agent_proto::client::GrpcAgents;
use forkr_operator::config::Args;
use forkr_operator::context::Context;
use forkr_operator::lease::LeaseLock;
use forkr_operator::metrics::Metrics;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Several crates link rustls with different providers; choose one for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter)
            .init();
    }
    let settings = args.settings()?;
    let discovery = args.agent.discovery()?;
    let token = args.agent.token()?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
    let metrics = Arc::new(Metrics::default());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let router = forkr_operator::server::router(metrics.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "forkr-operator".into()),
            std::process::id()
        )
    });
    let lease = Arc::new(LeaseLock::new(
        client.clone(),
        &args.agent.namespace,
        "forkr-operator",
        &identity,
    ));
    if !args.no_leader_election {
        lease.acquire().await;
        tracing::info!(identity = %identity, "leader lease acquired");
    }

    let agents = GrpcAgents::new(discovery, Some(client.clone()), &token)?;
    let stores = forkr_operator::stores(&client).await;
    let cx = Arc::new(Context::new(
        client,
        settings,
        agents,
        metrics,
        stores,
        Some(identity),
    ));
    // SIGTERM (a rollout, a drain) and SIGINT both stop the controllers gracefully.
    let stop = futures::future::FutureExt::shared(Box::pin(async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }));
    let controllers = forkr_operator::run(cx, args.concurrency, stop);
    if args.no_leader_election {
        controllers.await;
    } else {
        tokio::select! {
            () = controllers => {
                if let Err(e) = lease.release().await {
                    tracing::warn!(error = %e, "releasing the leader lease");
                }
            }
            () = lease.hold() => anyhow::bail!("lost the leader lease; exiting so a replica can take over"),
        }
    }
    Ok(())
}

//! The shared skeleton of a service process: pool, bus, HTTP server with
//! health endpoints, background workers, outbox relay, and an orderly stop.

use crate::{health, health::Readiness, metrics, outbox_relay, settings::CommonSettings};
use actix_web::{App, HttpServer, dev::Service, web};
use anyhow::Context;
use bus::Bus;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use std::{future::Future, sync::Arc, time::Duration};
use storage::{DbPool, Store};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

pub struct Runtime {
    /// The pool and the keys stored credentials are sealed with.
    pub store: Store,
    pub bus: Arc<Bus>,
    pub stop: CancellationToken,
    /// Notify after committing outbox rows so the relay publishes at once.
    pub outbox_wake: Arc<Notify>,
    /// The service's own tokio runtime. HTTP handlers run on actix's
    /// per-worker runtimes; database and broker I/O must happen here, where
    /// the pool's connections live (see [`MainRuntime`]).
    pub main: MainRuntime,
    tasks: JoinSet<()>,
    port: Option<u16>,
    name: &'static str,
    /// `/metrics`: a service registers its own here before `serve`.
    pub registry: Registry,
}

/// Runs futures on the service's main runtime from an HTTP handler.
///
/// actix-web runs each worker on its own single-threaded runtime; a
/// connection opened there dies with that worker. Hopping here keeps every
/// pooled connection on the runtime that outlives the HTTP server.
#[derive(Clone, Debug)]
pub struct MainRuntime(tokio::runtime::Handle);

impl MainRuntime {
    pub fn current() -> MainRuntime {
        MainRuntime(tokio::runtime::Handle::current())
    }

    pub async fn run<F, T>(&self, fut: F) -> anyhow::Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        Ok(self.0.spawn(fut).await?)
    }

    /// Starts `fut` on the main runtime without waiting for it (a response
    /// streamed from the database: the task feeds the body's channel).
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.0.spawn(fut));
    }
}

/// Pending connections the kernel may hold for the HTTP server.
const BACKLOG: u32 = 4096;

/// Outbox relay loops per process.
const OUTBOX_RELAYS: usize = 3;

impl Runtime {
    pub fn new(
        name: &'static str,
        common: &CommonSettings,
        stop: CancellationToken,
    ) -> anyhow::Result<Runtime> {
        // Every service reads or writes stored credentials: no key, no start.
        let keys = storage::secrets::Keys::from(common.secrets.keyring()?);
        let pool = storage::connect_pool(
            common.database.url.expose_secret(),
            common.database.pool_size,
        )
        .context("database.url")?;
        Ok(Runtime {
            store: Store::new(pool, keys),
            bus: Arc::new(Bus::new(common.amqp.clone())),
            stop,
            outbox_wake: Arc::new(Notify::new()),
            main: MainRuntime::current(),
            tasks: JoinSet::new(),
            port: None,
            name,
            registry: Registry::with_prefix("capi"),
        })
    }

    /// Serves `/health`, `/ready`, `/metrics` and the service's own routes;
    /// returns the bound port. Metrics registered after this are not served.
    pub fn serve<F>(&mut self, common: &CommonSettings, routes: F) -> anyhow::Result<u16>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let readiness = web::Data::new(Readiness {
            pool: self.store.pool().clone(),
            bus: self.bus.clone(),
            main: self.main.clone(),
        });
        let shared = metrics::Shared::register(&mut self.registry);
        let registry = Arc::new(std::mem::take(&mut self.registry));
        let sampler = shared.clone().sample(
            self.store.pool().clone(),
            self.bus.clone(),
            self.stop.clone(),
        );
        self.tasks.spawn(sampler);
        let server = HttpServer::new(move || {
            let http = shared.clone();
            let registry = registry.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let started = std::time::Instant::now();
                    let route = req
                        .match_pattern()
                        .unwrap_or_else(|| "(unmatched)".to_owned());
                    let method = req.method().to_string();
                    let m = http.clone();
                    let answer = srv.call(req);
                    async move {
                        let res = answer.await;
                        let status = match &res {
                            Ok(r) => r.status().as_u16(),
                            Err(e) => e.as_response_error().status_code().as_u16(),
                        };
                        m.http_seconds
                            .get_or_create(&metrics::RouteLabel {
                                route: route.clone(),
                            })
                            .observe(started.elapsed().as_secs_f64());
                        m.http_requests
                            .get_or_create(&metrics::HttpLabels {
                                route,
                                method,
                                status,
                            })
                            .inc();
                        res
                    }
                })
                .wrap(crate::http::security_headers())
                .wrap(tracing_actix_web::TracingLogger::<
                    crate::http_span::RequestSpan,
                >::new())
                .app_data(readiness.clone())
                .configure(health::routes)
                .configure(move |cfg| metrics::routes(cfg, registry.clone()))
                .configure(routes.clone())
        })
        .workers(common.http.workers.max(1))
        // A burst of webhooks (a CRM's mass update: a thousand at once)
        // waits in the accept queue instead of having its SYNs dropped.
        .backlog(BACKLOG)
        // A client has 5 s to send its request head (else 408 and the
        // connection is closed) and idle keep-alive connections close after
        // 5 s: a slow sender cannot hold a worker. Bodies have their own
        // limit where they are read (webhook-gateway's `gateway.body_timeout`).
        .client_request_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .shutdown_timeout(10)
        .shutdown_signal(self.stop.clone().cancelled_owned())
        .bind((common.http.host.as_str(), common.http.port))
        .with_context(|| format!("binding http {}:{}", common.http.host, common.http.port))?;
        let port = server
            .addrs()
            .first()
            .map(std::net::SocketAddr::port)
            .context("the http server bound no address")?;
        let server = server.run();
        self.tasks.spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        tracing::info!(service = self.name, port, "http listening");
        self.port = Some(port);
        Ok(port)
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Runs `work` once the schema is current (services never migrate it).
    pub fn spawn_worker<F>(&mut self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (pool, stop, name) = (self.store.pool().clone(), self.stop.clone(), self.name);
        self.tasks.spawn(async move {
            if wait_for_schema(&pool, &stop, name).await {
                work.await;
            }
        });
    }

    /// Publishes this service's outbox rows.
    pub fn spawn_outbox_relay(&mut self) {
        // A few relays side by side (rows are locked with SKIP LOCKED): a row
        // committed while one relay waits for its batch's confirms is taken
        // by another at once.
        for _ in 0..OUTBOX_RELAYS {
            let relay = outbox_relay::run(
                self.store.pool().clone(),
                self.bus.clone(),
                self.outbox_wake.clone(),
                self.stop.clone(),
            );
            self.spawn_worker(relay);
        }
    }

    /// Waits for the stop signal and for every task to finish, then closes the broker connection.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        self.stop.cancelled().await;
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.name,
                "tasks did not stop in time; aborting them"
            );
            self.tasks.abort_all();
        }
        if tokio::time::timeout(Duration::from_secs(5), self.bus.close())
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.name,
                "broker connection did not close in time"
            );
        }
        tracing::info!(service = self.name, "stopped");
        Ok(())
    }
}

/// True once no migration is pending; false if stopped first.
async fn wait_for_schema(pool: &DbPool, stop: &CancellationToken, service: &str) -> bool {
    let mut warned = false;
    loop {
        let pending = match pool.get().await {
            Ok(mut conn) => storage::migrations::pending(&mut conn)
                .await
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("database unreachable: {e}")),
        };
        match pending {
            Ok(p) if p.is_empty() => return true,
            Ok(p) if !warned => {
                tracing::warn!(
                    service,
                    pending = p.len(),
                    "waiting for the schema: run `capi migrate`"
                );
                warned = true;
            }
            Err(e) if !warned => {
                tracing::warn!(service, error = %e, "waiting for the database");
                warned = true;
            }
            _ => {}
        }
        if !crate::periodic::sleep_or_stop(stop, Duration::from_secs(1)).await {
            return false;
        }
    }
}

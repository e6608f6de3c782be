//! The job span's fields, as a `tracing` layer sees them. A test binary of its own: a test
//! running pools on other threads without a subscriber could race the span's callsite
//! registration and leave it disabled here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{Clock, JobArgs, JobContext, JobError, JobId, MemoryStore, Pool, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Ok1;
impl JobArgs for Ok1 {
    const KIND: &'static str = "ok";
}
struct Succeeds;
impl Worker for Succeeds {
    type Args = Ok1;
    async fn perform(&self, _: JobContext, _: Ok1) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

async fn finished(pool: &Pool, id: JobId) {
    pool.client()
        .wait_for(id, Duration::from_secs(120))
        .await
        .expect("the job finishes");
}

/// Records the fields of every `job` span.
#[derive(Clone, Default)]
struct SpanFields(Arc<Mutex<Vec<String>>>);

impl tracing::field::Visit for SpanFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}={value}", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanFields {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "job" {
            attrs.record(&mut self.clone());
        }
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        values.record(&mut self.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn the_job_span_names_the_job_and_records_how_it_ended() {
    use tracing_subscriber::layer::SubscriberExt;
    let fields = SpanFields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let pool = Pool::builder(Arc::new(MemoryStore::new()))
        .clock(Clock::tokio())
        .register(Succeeds)
        .worker_id("worker-7")
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Ok1).await.unwrap();
    finished(&pool, id).await;
    assert!(pool.shutdown().await.clean);
    let fields = fields.0.lock().unwrap().clone();
    for want in [
        format!("job_id={id}"),
        "queue=default".to_owned(),
        "kind=ok".to_owned(),
        "attempt=1".to_owned(),
        "worker_id=worker-7".to_owned(),
        "outcome=completed".to_owned(),
        "elapsed_ms=5".to_owned(),
    ] {
        assert!(fields.contains(&want), "{want} in {fields:?}");
    }
}

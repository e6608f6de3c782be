//! A stateful child that keeps serving its callers through a crash and a delayed restart,
//! without losing a request: a cache that owns its data, reached through a stable
//! [`Address`] that outlives its restarts.
//!
//! Callers `call` the cache with a timeout longer than the restart delay. Now and then
//! (evenly spread over the run) the cache loses its (simulated) backing-store connection
//! while handling a request and crashes; the supervisor restarts it after the delay. Requests sent meanwhile wait in
//! the mailbox; the request the crashed incarnation had taken is handed back (the request
//! type implements [`HandBack`]) and answered first by the next incarnation, which
//! reloads its data from the backing store before it serves.
//!
//! ```text
//! cargo run --example cache                                  # 2 s restart delay
//! cargo run --example cache -- --restart-delay-ms 300 --crashes 3
//! ```
//!
//! It prints what the callers saw and exits with failure if any request was lost.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use supervisor::{
    Address, ChildContext, ChildSpec, HandBack, Inbox, Intensity, ReplyTo, RestartPolicy,
    Supervisor,
};

/// What callers ask the cache.
enum Request {
    Put(String, u64, ReplyTo<()>),
    Get(String, ReplyTo<Option<u64>>),
}

/// Handling a request twice is safe (a put is idempotent, a get has no effect), and its
/// reply channel travels with it: hand it back when the cache crashes mid-request.
impl HandBack for Request {}

/// The durable side the cache warms up from (a database in real life).
type Backing = Arc<Mutex<HashMap<String, u64>>>;

/// When the cache crashes: after serving these many requests (in total), in order.
#[derive(Default)]
struct Chaos {
    crash_after: Mutex<Vec<u32>>,
    served: AtomicU32,
    crashes: AtomicU32,
}

impl Chaos {
    /// Whether the request being handled now is the one to crash on.
    fn crash_now(&self) -> bool {
        let served = self.served.load(Ordering::SeqCst);
        let Ok(mut plan) = self.crash_after.lock() else {
            return false;
        };
        if plan.last() == Some(&served) {
            plan.pop();
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// The cache child: loads the backing store, then serves; crashes where `chaos` says.
fn cache(backing: Backing, chaos: Arc<Chaos>) -> (ChildSpec, Address<Request>) {
    let spec = ChildSpec::with_mailbox(
        "cache",
        1024,
        move |ctx: ChildContext, mut inbox: Inbox<Request>| {
            let (backing, chaos) = (backing.clone(), chaos.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await; // warming up
                let mut data = backing.lock().map_err(|e| e.to_string())?.clone();
                println!(
                    "cache: incarnation {} serving ({} keys loaded, {} requests waiting)",
                    ctx.restarts(),
                    data.len(),
                    inbox.len()
                );
                while let Some(request) = inbox.take().await {
                    if chaos.crash_now() {
                        // `request` is dropped unfinished: handed back to the mailbox
                        return Err("lost the connection to the backing store".into());
                    }
                    match request.done() {
                        Request::Put(key, value, reply) => {
                            backing
                                .lock()
                                .map_err(|e| e.to_string())?
                                .insert(key.clone(), value);
                            data.insert(key, value);
                            let _ = reply.send(());
                        }
                        Request::Get(key, reply) => {
                            let _ = reply.send(data.get(&key).copied());
                        }
                    }
                    chaos.served.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }
        },
    );
    spec.expect("capacity and id are valid constants")
}

/// A stateful cache serving callers through crashes and delayed restarts.
#[derive(Parser, Debug)]
#[command(name = "cache")]
struct Flags {
    /// The delay before the crashed cache is restarted.
    #[arg(long, default_value_t = 2000)]
    restart_delay_ms: u64,
    /// How many times the cache crashes.
    #[arg(long, default_value_t = 2)]
    crashes: u32,
    /// Concurrent callers.
    #[arg(long, default_value_t = 4)]
    callers: u32,
    /// Requests per caller (a put and a get each).
    #[arg(long, default_value_t = 200)]
    requests: u32,
}

/// One caller: puts a value and reads it back, `n` times.
async fn caller(cache: Address<Request>, me: u32, n: u32, timeout: Duration) -> (u32, u32) {
    let (mut answered, mut lost) = (0, 0);
    for i in 0..n {
        let key = format!("caller-{me}-key-{i}");
        let value = u64::from(me) * 1_000_000 + u64::from(i);
        let put = cache
            .call(|r| Request::Put(key.clone(), value, r), timeout)
            .await;
        let got = cache.call(|r| Request::Get(key.clone(), r), timeout).await;
        match (put, got) {
            (Ok(()), Ok(Some(v))) if v == value => answered += 2,
            (put, got) => {
                println!(
                    "caller {me}: request {i} lost: {:?} / {:?}",
                    put.err(),
                    got.err()
                );
                lost += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (answered, lost)
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let flags = Flags::parse();
    let delay = Duration::from_millis(flags.restart_delay_ms);
    // crash after 1/(n+1), 2/(n+1)... of all requests, latest first (popped from the end)
    let total = flags.callers * flags.requests * 2;
    let plan = (1..=flags.crashes)
        .rev()
        .map(|k| total * k / (flags.crashes + 1))
        .collect();
    let chaos = Arc::new(Chaos {
        crash_after: Mutex::new(plan),
        ..Chaos::default()
    });
    let (spec, address) = cache(Backing::default(), chaos.clone());
    let root = Supervisor::builder("root")
        .intensity(Intensity::new(flags.crashes + 1, Duration::from_secs(3600)))
        .restart_policy(RestartPolicy::Fixed(delay))
        .child(spec)
        .build()?
        .start()
        .await?;

    // callers wait out a restart: their timeout is longer than the delay
    let timeout = delay * 2 + Duration::from_secs(5);
    let callers: Vec<_> = (0..flags.callers)
        .map(|me| tokio::spawn(caller(address.clone(), me, flags.requests, timeout)))
        .collect();
    let (mut answered, mut lost) = (0, 0);
    for c in callers {
        let (a, l) = c.await?;
        answered += a;
        lost += l;
    }
    let tree = root.tree().await?;
    print!("{tree}");
    let report = root.shutdown().await;
    let crashes = chaos.crashes.load(Ordering::SeqCst);
    println!("requests answered: {answered}, lost: {lost}, cache crashes: {crashes}");
    Ok(if lost == 0 && report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

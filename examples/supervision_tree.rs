//! A small supervision tree: a flaky worker restarted with backoff, a nested supervisor whose
//! database child signals readiness late, and a child that lingers on shutdown to flush.
//! It prints every event and stops cleanly on Ctrl-C / SIGTERM (a second signal forces).
//! On SIGUSR1 it prints the whole tree at a glance, as Erlang's observer shows it: every
//! supervisor and child with its state, uptime, restarts, pending restart and last exit.
//!
//! ```text
//! cargo run --example supervision_tree                 # until Ctrl-C
//! cargo run --example supervision_tree -- --run-for 5  # or RUN_FOR_SECS=5: stop after 5 s
//! kill -USR1 <pid>                                     # print the tree (the pid is printed)
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use supervisor::{
    Backoff, ChildContext, ChildSpec, Event, Intensity, RestartPolicy, Shutdown, Strategy,
    Supervisor, SupervisorHandle, SupervisorSpec,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;

/// Prints the tree every time the process receives SIGUSR1.
fn print_tree_on_sigusr1(handle: SupervisorHandle) -> std::io::Result<()> {
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match handle.tree().await {
                Ok(tree) => println!("{tree}"),
                Err(e) => println!("tree: {e}"),
            }
        }
    });
    Ok(())
}

fn print_events(mut rx: broadcast::Receiver<Event>) {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(event) => println!("event: {event}"),
                Err(broadcast::error::RecvError::Lagged(n)) => println!("event: ({n} missed)"),
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Works for a while, then fails; fails at once on its first two restarts.
fn flaky() -> ChildSpec {
    ChildSpec::new("flaky", |ctx: ChildContext| async move {
        if (1..=2).contains(&ctx.restarts()) {
            return Err(format!("flaky: cannot connect (attempt {})", ctx.restarts()).into());
        }
        tokio::select! {
            () = ctx.cancelled() => Ok(()),
            () = tokio::time::sleep(Duration::from_secs(2)) => Err("flaky: lost its connection".into()),
        }
    })
    .restart_policy(RestartPolicy::Backoff(
        Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5)),
    ))
}

/// Becomes ready only after a warm-up; `api` starts after it.
fn database() -> ChildSpec {
    ChildSpec::new("db", |ctx: ChildContext| async move {
        tokio::time::sleep(Duration::from_millis(500)).await; // warming up
        ctx.ready();
        ctx.cancelled().await;
        Ok(())
    })
    .wait_for_ready()
    .start_timeout(Duration::from_secs(5))
}

fn api() -> ChildSpec {
    ChildSpec::new("api", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
}

/// On shutdown, spends a second flushing what it buffered, within a 3 s bound.
fn lingerer() -> ChildSpec {
    ChildSpec::new("lingerer", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        println!("lingerer: flushing buffers before exit...");
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("lingerer: flushed");
        Ok(())
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(3)))
}

fn tree() -> Result<SupervisorSpec, supervisor::SpecError> {
    let services = Supervisor::builder("services")
        .strategy(Strategy::RestForOne)
        .on_start(|h| print_events(h.subscribe()))
        .child(database())
        .child(api())
        .build()?;
    Supervisor::builder("root")
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(10, Duration::from_secs(10)))
        .child(lingerer())
        .child(ChildSpec::supervisor(services))
        .child(flaky())
        .build()
}

/// A small supervision tree that prints its events and stops cleanly on Ctrl-C / SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "supervision_tree")]
struct Flags {
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS", env = "RUN_FOR_SECS")]
    run_for: Option<f64>,
}

fn run_for() -> Option<Duration> {
    Flags::parse().run_for.map(Duration::from_secs_f64)
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let handle = tree()?.start().await?;
    print_events(handle.subscribe());
    print_tree_on_sigusr1(handle.clone())?;
    let pid = std::process::id();
    println!("tree started (pid {pid}); `kill -USR1 {pid}` prints the tree, Ctrl-C stops");
    let bound = Duration::from_secs(10);
    let outcome = match run_for() {
        None => supervisor::run_until_signal(handle, bound).await?,
        Some(d) => {
            let signals = supervisor::run_until_signal(handle.clone(), bound);
            tokio::select! {
                outcome = signals => outcome?,
                () = tokio::time::sleep(d) => {
                    println!("run-for elapsed; shutting down");
                    let report = handle.shutdown_within(bound).await;
                    println!("{report}");
                    return Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
                }
            }
        }
    };
    println!("{outcome}");
    Ok(outcome.exit_code())
}

//! The subcommands, each on the public client API ([`Client`]) or, where the client has no
//! call for it (an enqueue of a kind known only by name, a purge), the store facade that
//! validates, times and traces every store call the client makes.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use jobs::store::{JobListParams, JobPruneParams, NewJob, Store, StoreFacade};
use jobs::{Client, JobId, JobRecord, JobState, Timestamp};
use serde::Serialize;

use crate::args::{Command, EnqueueArgs, ListArgs, PurgeArgs};
use crate::database::Target;
use crate::error::CliError;
use crate::output::{
    self, print_json, ChangedDocument, JobView, ListDocument, PurgeDocument, QueueView,
    StatsDocument,
};

/// Jobs deleted per prune call of `jobs purge`.
const PURGE_BATCH: usize = 10_000;
/// Jobs read per store call while `jobs list` filters by kind, age or args.
const LIST_SCAN_PAGE: usize = 1_000;

/// Runs `command` against `target`, printing tables or, with `json`, one JSON document.
pub(crate) async fn run(command: Command, target: &Target, json: bool) -> Result<(), CliError> {
    let out = Output { json };
    let client = async || Ok::<_, CliError>(Client::new(target.open().await?));
    match command {
        Command::Migrate => migrate(target, out).await,
        Command::Stats => stats(&client().await?, out).await,
        Command::List(args) => list(target.open().await?, args, out).await,
        Command::Show { id } => show(&client().await?, JobId(id), out).await,
        Command::Retry { id } => retry(&client().await?, JobId(id), out).await,
        Command::Cancel { id } => cancel(&client().await?, JobId(id), out).await,
        Command::Enqueue(args) => enqueue(target.open().await?, args, out).await,
        Command::Purge(args) => purge(target.open().await?, args, target, out).await,
    }
}

/// The only command that creates the database: the others open an existing one.
async fn migrate(target: &Target, out: Output) -> Result<(), CliError> {
    let migrated = target.migrate().await?;
    out.print(&migrated, || {
        format!(
            "{} is at schema version {}",
            target.describe(),
            migrated.schema_version
        )
    })
}

/// Tables or JSON.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Prints `document` as JSON, or `text`.
    fn print(
        self,
        document: &impl Serialize,
        text: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            print_json(document)?;
        } else {
            println!("{}", text());
        }
        Ok(())
    }
}

async fn stats(client: &Client, out: Output) -> Result<(), CliError> {
    let stats = client.queue_stats().await?;
    let now = client.clock().now();
    let queues: Vec<_> = stats.iter().map(|q| QueueView::new(q, now)).collect();
    out.print(&StatsDocument { queues }, || {
        output::stats_table(&stats, now)
    })
}

/// A page of `jobs list`: the jobs, and the `--after` of the next page if there may be one.
#[derive(Debug)]
struct Page {
    jobs: Vec<JobRecord>,
    next_after: Option<JobId>,
}

/// Reads one page: the store filters by state and queue; the kind, age and args filters are
/// applied here, reading on until `limit` jobs match or the store has no more.
async fn list_page(store: &StoreFacade, args: &ListArgs) -> Result<Page, CliError> {
    let limit = args.limit as usize;
    let mut params = JobListParams {
        state: args.state,
        queue: args.queue.clone(),
        after: args.after.map(JobId),
        limit: if args.filters_here() {
            LIST_SCAN_PAGE
        } else {
            limit
        },
    };
    let now = Timestamp::now();
    let mut jobs = Vec::new();
    loop {
        let batch = store.job_list(params.clone()).await?;
        let exhausted = batch.len() < params.limit;
        let mut last_read = batch.last().map(|job| job.id);
        for job in batch {
            if jobs.len() == limit {
                break;
            }
            last_read = Some(job.id);
            if args.matches(&job, now) {
                jobs.push(job);
            }
        }
        if jobs.len() == limit {
            return Ok(Page {
                jobs,
                next_after: last_read,
            });
        }
        if exhausted {
            return Ok(Page {
                jobs,
                next_after: None,
            });
        }
        params.after = last_read;
    }
}

async fn list(store: Arc<dyn Store>, args: ListArgs, out: Output) -> Result<(), CliError> {
    let page = list_page(&StoreFacade::new(store), &args).await?;
    let views: Vec<_> = page.jobs.iter().map(JobView::from).collect();
    let document = ListDocument {
        jobs: views,
        next_after: page.next_after.map(|id| id.0),
    };
    out.print(&document, || {
        let mut text = output::jobs_table(&page.jobs);
        if let Some(after) = page.next_after {
            text.push_str(&format!("\nmore: --after {after}"));
        }
        text
    })
}

async fn job(client: &Client, id: JobId) -> Result<JobRecord, CliError> {
    client.job(id).await?.ok_or(CliError::NotFound(id))
}

async fn show(client: &Client, id: JobId, out: Output) -> Result<(), CliError> {
    let job = job(client, id).await?;
    out.print(&JobView::from(&job), || output::job_detail(&job))
}

/// Prints the job after a change: `{id, state}` or "job ID VERB: STATE".
async fn changed(client: &Client, id: JobId, verb: &str, out: Output) -> Result<(), CliError> {
    let job = job(client, id).await?;
    let document = ChangedDocument {
        id: id.0,
        state: job.state.as_str(),
    };
    out.print(&document, || {
        format!("job {id} {verb}: it is {}", job.state)
    })
}

async fn retry(client: &Client, id: JobId, out: Output) -> Result<(), CliError> {
    if !client.retry_job(id).await? {
        let job = job(client, id).await?;
        return Err(CliError::WrongState {
            id,
            state: job.state,
            needed: "only dead or cancelled jobs can be retried",
        });
    }
    changed(client, id, "retried", out).await
}

async fn cancel(client: &Client, id: JobId, out: Output) -> Result<(), CliError> {
    if !client.cancel_job(id).await? {
        let job = job(client, id).await?;
        return Err(CliError::WrongState {
            id,
            state: job.state,
            needed: "only waiting (scheduled or available) jobs can be cancelled",
        });
    }
    changed(client, id, "cancelled", out).await
}

async fn enqueue(store: Arc<dyn Store>, args: EnqueueArgs, out: Output) -> Result<(), CliError> {
    let now = Timestamp::now();
    let job = NewJob {
        kind: args.kind,
        args: args.args,
        queue: args.queue.unwrap_or_else(|| jobs::DEFAULT_QUEUE.to_owned()),
        priority: args.priority.unwrap_or(0),
        max_attempts: args.max_attempts.unwrap_or(jobs::DEFAULT_MAX_ATTEMPTS),
        run_at: args.at.or(args.run_in.map(|delay| now + delay)),
        metadata: Default::default(),
    };
    job.validate().map_err(|e| CliError::Usage(e.to_string()))?;
    let store = StoreFacade::new(store);
    let ids = store
        .job_insert_many(jobs::store::JobInsertParams {
            jobs: vec![job],
            now,
        })
        .await?;
    let id =
        jobs::store::JobInsertParams::only_id(ids).map_err(|e| CliError::Usage(e.to_string()))?;
    let client = Client::new(store.inner().clone());
    changed(&client, id, "enqueued", out).await
}

async fn purge(
    store: Arc<dyn Store>,
    args: PurgeArgs,
    target: &Target,
    out: Output,
) -> Result<(), CliError> {
    let states = if args.state.is_empty() {
        vec![JobState::Completed, JobState::Cancelled]
    } else {
        args.state
    };
    let names: Vec<_> = states.iter().map(|s| s.as_str()).collect();
    let age = humantime::format_duration(args.older_than);
    let question = format!(
        "Delete {} jobs finished more than {age} ago from {}?",
        names.join(" and "),
        target.describe()
    );
    if !args.yes && std::io::stdin().is_terminal() && !confirm(&question)? {
        return Err(CliError::Aborted);
    }
    let store = StoreFacade::new(store);
    let finalized_before = Timestamp::now() - args.older_than;
    let mut deleted = 0;
    loop {
        let params = JobPruneParams {
            states: states.clone(),
            finalized_before,
            limit: PURGE_BATCH,
        };
        let batch = store.job_prune(params).await?;
        deleted += batch;
        if batch < PURGE_BATCH as u64 {
            break;
        }
    }
    let document = PurgeDocument {
        deleted,
        states: names.clone(),
        finalized_before: finalized_before.to_string(),
    };
    out.print(&document, || {
        format!(
            "deleted {deleted} {} jobs finished more than {age} ago",
            names.join(" and ")
        )
    })
}

/// Asks `question` on the terminal; only `y` or `yes` confirms.
fn confirm(question: &str) -> Result<bool, CliError> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

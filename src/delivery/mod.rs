//! The send loop: letters go out over one or more connections, and every outcome is recorded.
//!
//! One coordinator (the calling thread) reads the letters in file order, records them as
//! `sending`, and hands them to workers; each worker owns one transport (one SMTP connection) on
//! its own thread, composes the message (dated the moment of hand-over) and hands it over.
//! Outcomes come back to the coordinator, which records them and only then reports them. This
//! module decides nothing about who gets a letter (see `campaign`).
//!
//! Durability, with group commits. A letter goes through three marks, recorded in the order they
//! happen, several letters' in one transaction, each forced to disk (`Ledger::record`):
//! 1. `sending`, with its attempt, when it is queued for a connection. The coordinator keeps it
//!    until its next commit, at the latest the one at this letter's own gate; a crash before then
//!    leaves the letter pending, and nothing of it can have arrived;
//! 2. "data started" right before its message data goes out: the worker's transport stops at its
//!    gate (SMTP: the envelope accepted and DATA answered with 354, no byte of the message
//!    written; the archive copy written) and asks the coordinator, whose next commit records the
//!    marks of every worker waiting at that moment, with everything that happened before them,
//!    and only then lets them go on;
//! 3. the outcome, recorded in the next commit, and reported only once that is on disk. A letter
//!    tried again can only send its data after that.
//!
//! The coordinator commits whenever a gate waits, and otherwise once outcomes have waited
//! `REPORT_WITHIN` to be reported; a gate is never held back for more work.
//!
//! A crash can therefore never lose a delivery. It can leave letters `sending`: the next run
//! shows those whose data had started as `unknown` ("may have been delivered"), at most one per
//! connection (a gate opens only after the outcomes that came back before it are on disk), and
//! puts the others back as they were, since nothing of them can have arrived (`Ledger::enlist`).
//! When the ledger cannot be written (a full disk), no gate opens, nothing more is handed over
//! and the run ends with `Stop::LedgerUnwritable`; a letter whose outcome could not be recorded
//! stays `sending` with its data mark, so it is never `pending` again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::campaign::plan::{self, Plan, Planned};
use crate::campaign::{Letter, Prepared};
use crate::clock;
use crate::delivery::transport::{Outcome, Stop, Transport};
use crate::record::ledger::{Change, Finish, Ledger, Start, State};
use crate::record::storage::LedgerWriteError;

pub(crate) mod archive;
pub(crate) mod connections;
pub(crate) mod outbox;
pub(crate) mod pace;
pub(crate) mod settle;
pub(crate) mod smtp;
pub(crate) mod stop;
pub(crate) mod transport;

#[cfg(test)]
mod tests;

pub(crate) use pace::Pace;

/// How long outcomes wait to be recorded and reported when no gate asks for a commit first.
const REPORT_WITHIN: Duration = Duration::from_millis(2);

/// How a run went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub delivered: usize,
    pub failed_temporary: usize,
    pub failed_permanent: usize,
    pub unknown: usize,
    /// Set when the run stopped early for a reason that concerns all letters.
    pub stopped: Option<Stop>,
    /// Letters left for a later run because the run stopped.
    pub left: usize,
    /// Letters marked `sending` whose outcome could not be recorded (the ledger could not be
    /// written): the ledger keeps them `sending`, so the next run finds them unknown.
    pub unrecorded: usize,
}

impl Summary {
    pub(crate) fn failed(&self) -> usize {
        self.failed_temporary + self.failed_permanent + self.unknown
    }
}

/// What the send loop tells the person watching. Called only after the outcome is in the ledger.
pub(crate) trait Observer {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    );
    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: std::time::Duration, reply: &str);
}

/// Set by Ctrl-C: the letters in flight finish, no new one starts.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// One hand-over of one letter.
struct Job {
    attempt: i64,
    letter: Letter,
    before: State,
    /// Hand-overs so far, this one included.
    tries: u32,
}

/// What a worker tells the coordinator.
enum Event {
    /// This attempt's data is about to go out: answer once that is durable (`Err`: do not send).
    Gate(i64, mpsc::SyncSender<Result<(), Stop>>),
    /// A letter is done with, one way or another. Most come on a channel of their own, which
    /// the coordinator reads whenever it is awake, without being woken for each; a letter that
    /// stops the run comes here.
    Done(Box<(Job, Done)>),
    /// A connection found no letter waiting for it.
    Idle,
}

/// Reads the next group of planned letters (`plan::GROUP`) from the recipients file into
/// `ready`, and makes sure they are the letters checked: the same rows, unchanged, each in the
/// state it was planned in. Otherwise none of them is sent and the run stops.
fn read_group(
    plan: &Plan,
    group: usize,
    planned: &mut impl Iterator<Item = Planned>,
    letters: &mut impl Iterator<Item = Result<Letter>>,
    ready: &mut VecDeque<(Letter, State)>,
) -> Result<()> {
    let mut read = Vec::with_capacity(plan::GROUP);
    for next in planned.take(plan::GROUP) {
        let letter = loop {
            let letter = letters.next().context(CHANGED)??;
            if letter.index == next.index {
                break letter;
            }
        };
        if letter.state() != next.before {
            anyhow::bail!(CHANGED);
        }
        read.push((next.index, crate::digest::fingerprint(&letter.row_hash)));
        ready.push_back((letter, next.before));
    }
    if !read.is_empty() && !plan.group_matches(group, &read) {
        ready.clear();
        anyhow::bail!(CHANGED);
    }
    Ok(())
}

/// A letter at its gate: its attempt, and where to say whether its data may go out.
type Waiting = (i64, mpsc::SyncSender<Result<(), Stop>>);

/// What came back: the letters done with, and the letters waiting at their gates.
fn sort(events: Vec<Event>) -> (Vec<(Job, Done)>, Vec<Waiting>) {
    let mut finished = Vec::new();
    let mut gates = Vec::new();
    for event in events {
        match event {
            Event::Gate(attempt, answer) => gates.push((attempt, answer)),
            Event::Done(done) => finished.push(*done),
            Event::Idle => {}
        }
    }
    (finished, gates)
}

enum Done {
    Handed(Outcome),
    /// The transport refused to go on; this letter was not handed over.
    Stopped(Stop),
    /// rundbrev failed while handing this letter over (`Stop::Internal`); the run stops. Once its
    /// data had started it may have arrived and is recorded `unknown`; before, it was not handed
    /// over.
    Crashed {
        stop: Stop,
        data_started: bool,
    },
    /// The run was stopping; this letter was not handed over.
    Skipped,
}

/// A letter waiting for its next try.
struct Retry {
    due: Instant,
    letter: Letter,
    before: State,
    tries: u32,
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Retry {}
impl PartialOrd for Retry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Retry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.due.cmp(&other.due)
    }
}

/// Runs the plan over the given transports (one worker thread each).
pub(crate) fn execute(
    p: &Prepared,
    reader: Option<&Ledger>,
    ledger: &mut Ledger,
    transports: Vec<Box<dyn Transport + Send>>,
    plan: &Plan,
    pace: Pace,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let kind = transports.first().map(|t| t.kind()).unwrap_or("outbox");
    let workers = transports.len().max(1);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Event>();
    let (quiet_tx, quiet_rx) = mpsc::channel::<Event>();
    let job_rx = Mutex::new(job_rx);
    let halt = AtomicBool::new(false);
    let next_attempt = ledger.next_attempt()?;
    let mut run = Run {
        p,
        ledger,
        next_attempt,
        changes: Vec::new(),
        unreported: Vec::new(),
        retrying: Vec::new(),
        report_by: None,
        kind,
        pace,
        observer,
        summary: Summary::default(),
        total: plan.len(),
        reported: 0,
        in_flight: 0,
        retries: BinaryHeap::new(),
        next_slot: Instant::now(),
        open: 0,
        flowing: false,
    };
    let (result, tail) = thread::scope(|scope| {
        for transport in transports {
            let (jobs, done, quiet, halt) = (&job_rx, done_tx.clone(), quiet_tx.clone(), &halt);
            scope.spawn(move || work(p, transport, jobs, &done, &quiet, halt));
        }
        drop((done_tx, quiet_tx));
        let events = Events {
            waking: &done_rx,
            quiet: &quiet_rx,
        };
        let result = run.drive(reader, plan, &job_tx, &events, workers, &halt);
        if result.is_err() {
            // Letters queued but not yet taken are not handed over.
            halt.store(true, Ordering::SeqCst);
        }
        drop(job_tx);
        // Whatever happened, let the workers end their sessions; record what they still return.
        // A gate asked now stays closed (its answer is dropped): that letter does not go out.
        halt.store(true, Ordering::SeqCst);
        let drained: Vec<(Job, Done)> = done_rx
            .iter()
            .chain(quiet_rx.try_iter())
            .filter_map(|event| match event {
                Event::Gate(_, tell) => {
                    let _ = tell.send(Err(Stop::Interrupted));
                    None
                }
                Event::Done(done) => Some(*done),
                Event::Idle => None,
            })
            .collect();
        // The run is over: nothing is tried again, a letter that failed for now here stays
        // failed-temporary.
        run.came_back(drained);
        (result, run.commit(Vec::new()))
    });
    match result.err().or(tail.err()) {
        None => Ok(run.summary),
        Some(e) => match LedgerWriteError::find(&e) {
            Some(failed) => Ok(run.stopped_by_ledger(failed.clone())),
            None => Err(e),
        },
    }
}

/// Where the workers' events arrive: those that must wake the coordinator, and the letters done
/// with, which it reads whenever it is awake.
struct Events<'a> {
    waking: &'a Receiver<Event>,
    quiet: &'a Receiver<Event>,
}

fn work(
    p: &Prepared,
    transport: Box<dyn Transport + Send>,
    jobs: &Mutex<Receiver<Job>>,
    events: &Sender<Event>,
    quiet: &Sender<Event>,
    halt: &AtomicBool,
) {
    // `None` once a fault in rundbrev broke this connection's work: it is not used again.
    let mut transport = Some(transport);
    loop {
        let Ok(rx) = jobs.lock() else { break };
        let job = match rx.try_recv() {
            Ok(job) => job,
            Err(mpsc::TryRecvError::Empty) => {
                // Nothing queued: the coordinator hears of it now, and of the letters done.
                if events.send(Event::Idle).is_err() {
                    break;
                }
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        drop(rx);
        let result = match transport.as_mut() {
            Some(t) if !halt.load(Ordering::SeqCst) => {
                // A fault in rundbrev (a panic in composing, TLS or the transport) must not leave
                // the coordinator waiting for this letter for ever: it comes back as `Crashed`,
                // the run stops, and this connection, in a state nobody knows, is given up.
                let mut data_started = false;
                let handed = panic::catch_unwind(AssertUnwindSafe(|| {
                    hand_over(p, &job, t.as_mut(), events, halt, &mut data_started)
                }));
                handed.unwrap_or_else(|payload| {
                    halt.store(true, Ordering::SeqCst);
                    let broken = transport.take();
                    // Even dropping it could fail the same way.
                    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(broken)));
                    let stop = Stop::Internal {
                        what: crate::sanitize::panic_text(payload.as_ref()),
                    };
                    Done::Crashed { stop, data_started }
                })
            }
            _ => Done::Skipped,
        };
        // A letter that stops the run wakes the coordinator; the others wait for it to look.
        let stops = matches!(result, Done::Stopped(_) | Done::Crashed { .. });
        let done = Event::Done(Box::new((job, result)));
        let told = if stops {
            events.send(done)
        } else {
            quiet.send(done)
        };
        if told.is_err() {
            break;
        }
    }
    if let Some(mut t) = transport {
        t.close();
    }
}

/// Composes one letter (dated now) and hands it to the transport, through the gate.
/// `data_started` is set once the gate has opened: from then on the letter may arrive.
fn hand_over(
    p: &Prepared,
    job: &Job,
    transport: &mut (dyn Transport + Send),
    events: &Sender<Event>,
    halt: &AtomicBool,
    data_started: &mut bool,
) -> Done {
    let composed = match p.compose(&job.letter, clock::now()) {
        Ok((_, composed)) => composed,
        Err(error) => {
            halt.store(true, Ordering::SeqCst);
            return Done::Stopped(Stop::Unbuildable {
                key: job.letter.key.clone(),
                error,
            });
        }
    };
    // The coordinator answers once the data mark is on disk.
    let mut gate_closed = false;
    let mut gate = || {
        // A channel of its own: if the coordinator drops the question, the answer is "no"
        // rather than a wait for ever.
        let (answer_tx, answer_rx) = mpsc::sync_channel::<Result<(), Stop>>(1);
        let asked = events.send(Event::Gate(job.attempt, answer_tx));
        let answer = match asked {
            Ok(()) => answer_rx.recv().unwrap_or(Err(Stop::Interrupted)),
            Err(_) => Err(Stop::Interrupted),
        };
        gate_closed = answer.is_err();
        *data_started = answer.is_ok();
        answer
    };
    let sent = transport.send_through(&composed, &p.file_stem(&job.letter), &mut gate);
    match sent {
        Ok(outcome) => Done::Handed(outcome),
        // Held back at the gate: not handed over, and no reason of its own.
        Err(_) if gate_closed => Done::Skipped,
        Err(stop) => {
            halt.store(true, Ordering::SeqCst);
            Done::Stopped(stop)
        }
    }
}

struct Run<'a> {
    p: &'a Prepared,
    ledger: &'a mut Ledger,
    kind: &'static str,
    pace: Pace,
    observer: &'a mut dyn Observer,
    summary: Summary,
    total: usize,
    reported: usize,
    in_flight: usize,
    retries: BinaryHeap<Reverse<Retry>>,
    /// The earliest moment the next letter may be handed over, with a rate limit.
    next_slot: Instant,
    /// Letters marked `sending` in the ledger whose outcome is not recorded yet.
    open: usize,
    /// The id the next attempt gets.
    next_attempt: i64,
    /// What happened since the last commit, in order: the next commit records it.
    changes: Vec<Change>,
    /// The letters done with whose outcome is in `changes`, to report after the commit.
    unreported: Vec<(Job, Done)>,
    /// The attempts among them whose letters are to be tried again, with their waits.
    retrying: Vec<(i64, Duration)>,
    /// When `unreported` must be committed and reported at the latest.
    report_by: Option<Instant>,
    /// Whether the last letter that came back was delivered: letters are going through.
    flowing: bool,
}

/// Why a run refuses to go on when the recipients file no longer matches the plan.
const CHANGED: &str = "the recipients file or the ledger changed after the letters were checked; nothing more was sent. Run the command again";

impl Run<'_> {
    fn drive(
        &mut self,
        reader: Option<&Ledger>,
        plan: &Plan,
        jobs: &Sender<Job>,
        events: &Events<'_>,
        workers: usize,
        halt: &AtomicBool,
    ) -> Result<()> {
        // While letters are going through, each connection finds its next letter waiting when it
        // is done with one. After a failure, one letter per connection: a failure that concerns
        // every letter (a server that drops each connection) then stops the run with the rest
        // still pending. Only a letter past its gate can be left `unknown` by a crash: at most one
        // per connection, however many are waiting.
        let mut planned = plan.letters().peekable();
        // The next letters to send, read again and found as planned, a group at a time.
        let mut ready: VecDeque<(Letter, State)> = VecDeque::new();
        let mut group = 0;
        // Letters never handed over have no frozen stamps: when the plan holds only those (not
        // even a letter settled back to pending after an earlier try), the
        // ledger need not be asked letter by letter (`Ledger::record` still checks each state).
        let mut letters = self.p.letters(if plan.all_new() { None } else { reader })?;
        let interval = self.pace.interval();
        let mut arrived: Vec<Event> = Vec::new();
        loop {
            if STOP.load(Ordering::SeqCst) && self.summary.stopped.is_none() {
                self.summary.stopped = Some(Stop::Interrupted);
            }
            // Whatever has come back, without waiting.
            arrived.extend(events.waking.try_iter());
            arrived.extend(events.quiet.try_iter());
            let (finished, gates) = sort(std::mem::take(&mut arrived));
            // A transport that refuses to go on stops the run before anything more is handed
            // over, and before any gate opens.
            if self.summary.stopped.is_none() {
                self.summary.stopped = finished.iter().find_map(|(_, done)| match done {
                    Done::Stopped(stop) | Done::Crashed { stop, .. } => Some(stop.clone()),
                    _ => None,
                });
            }
            let stopping = self.summary.stopped.is_some();
            if stopping {
                halt.store(true, Ordering::SeqCst);
            }
            self.in_flight -= finished.len().min(self.in_flight);
            if let Some((_, done)) = finished.last() {
                // Letters are going through while the last one that came back was delivered.
                self.flowing = matches!(done, Done::Handed(o) if o.parts().0 == State::Delivered);
            }
            // A letter to try again is due before the letters not tried yet: a failure that
            // concerns every letter then stops the run with the others untouched.
            let scheduled = self.schedule_retries(&finished);
            self.retrying.extend(scheduled);
            self.came_back(finished);
            // Hand over as much as the window and the rate limit allow.
            let mut batch: Vec<(Letter, State, u32)> = Vec::new();
            // The recipients file changed or could not be read: nothing more is handed over,
            // but what came back is still recorded first.
            let mut unreadable = None;
            let window = if self.flowing { 2 * workers } else { workers };
            while !stopping && self.in_flight + batch.len() < window {
                let now = Instant::now();
                if interval.is_some() && self.next_slot > now {
                    break;
                }
                let next = if self.retries.peek().is_some_and(|r| r.0.due <= now) {
                    let Reverse(r) = self.retries.pop().expect("peeked");
                    (r.letter, r.before, r.tries)
                } else {
                    if ready.is_empty() {
                        if let Err(e) =
                            read_group(plan, group, &mut planned, &mut letters, &mut ready)
                        {
                            unreadable = Some(e);
                            break;
                        }
                        group += 1;
                    }
                    match ready.pop_front() {
                        Some((letter, before)) => (letter, before, 0),
                        None => break,
                    }
                };
                if let Some(interval) = interval {
                    // Spaced evenly from the last hand-over: never a burst to catch up.
                    self.next_slot = self.next_slot.max(now) + interval;
                }
                batch.push(next);
            }
            if unreadable.is_some() {
                batch.clear();
            }
            let handed = !batch.is_empty();
            self.hand_out(batch, jobs)?;
            // A gate waiting is answered now; outcomes are reported within `REPORT_WITHIN`.
            let due = self.report_by.is_some_and(|by| by <= Instant::now());
            if !gates.is_empty() || due || unreadable.is_some() {
                self.commit(gates)?;
            }
            if let Some(e) = unreadable {
                return Err(e);
            }
            if handed {
                continue;
            }
            let more_to_send = !stopping
                && (!ready.is_empty() || planned.peek().is_some() || !self.retries.is_empty());
            if self.in_flight == 0 && !more_to_send {
                self.commit(Vec::new())?;
                if stopping {
                    self.summary.left += ready.len() + planned.count();
                    // Letters waiting for a retry stay failed-temporary, as recorded.
                    self.summary.failed_temporary += self.retries.len();
                }
                return Ok(());
            }
            // Wait for an outcome, or, when a connection is free, the next retry or rate slot.
            let mut wait = Duration::from_millis(200);
            if self.in_flight < window && !stopping {
                let now = Instant::now();
                if let Some(r) = self.retries.peek() {
                    wait = wait.min(r.0.due.saturating_duration_since(now));
                }
                if interval.is_some() {
                    wait = wait.min(self.next_slot.saturating_duration_since(now));
                }
            }
            if let Some(by) = self.report_by {
                wait = wait.min(by.saturating_duration_since(Instant::now()));
            }
            if self.in_flight == 0 {
                thread::sleep(wait);
                continue;
            }
            if self.in_flight > 0 {
                // Letters done with do not wake the coordinator: it looks at least this often.
                wait = wait.min(REPORT_WITHIN);
            }
            match events.waking.recv_timeout(wait) {
                Ok(first) => arrived.push(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the sending threads stopped unexpectedly; run again to continue (nothing is lost)")
                }
            }
        }
    }

    /// Notes what came back: each outcome (or each letter taken back unsent) goes into the next
    /// commit, and is reported after it.
    fn came_back(&mut self, finished: Vec<(Job, Done)>) {
        for (job, done) in &finished {
            let key = job.letter.key.clone();
            let change = match done {
                Done::Handed(outcome) => {
                    let (state, code, reply) = outcome.parts();
                    Change::Finish(Finish {
                        attempt: job.attempt,
                        key,
                        state,
                        code,
                        reply: reply.to_string(),
                    })
                }
                Done::Crashed {
                    stop,
                    data_started: true,
                } => Change::Finish(Finish {
                    attempt: job.attempt,
                    key,
                    state: State::Unknown,
                    code: None,
                    reply: stop.to_string(),
                }),
                Done::Stopped(_) | Done::Crashed { .. } | Done::Skipped => Change::Abandon {
                    attempt: job.attempt,
                    key,
                    // Not handed over: back to where it was before this try.
                    back_to: if job.tries > 1 {
                        State::FailedTemporary
                    } else {
                        job.before
                    },
                },
            };
            self.changes.push(change);
        }
        if !finished.is_empty() && self.report_by.is_none() {
            self.report_by = Some(Instant::now() + REPORT_WITHIN);
        }
        self.unreported.extend(finished);
    }

    /// Gives these letters to the connections, each with its attempt; their `sending` marks go
    /// into the next commit, which comes at the latest at their own gates.
    fn hand_out(&mut self, batch: Vec<(Letter, State, u32)>, jobs: &Sender<Job>) -> Result<()> {
        for (letter, before, tries) in batch {
            let attempt = self.next_attempt;
            self.next_attempt += 1;
            self.changes.push(Change::Start(Start {
                attempt,
                key: letter.key.clone(),
                expected: if tries == 0 {
                    before
                } else {
                    State::FailedTemporary
                },
                address: letter.to.email.clone(),
                name: letter.to.name.clone(),
                stamp: letter.stamp.clone(),
                row_hash: letter.row_hash.clone(),
            }));
            self.in_flight += 1;
            jobs.send(Job {
                attempt,
                letter,
                before,
                tries: tries + 1,
            })
            .context("the sending threads stopped unexpectedly")?;
        }
        Ok(())
    }

    /// Records everything that happened since the last commit, with the data marks of the
    /// letters waiting at their gates, in one transaction forced to disk (`Ledger::record`); only
    /// then do the gates open and the outcomes get reported. In that order a connection's next
    /// letter passes its gate only once the letter before it has its outcome on disk: a crash
    /// leaves at most one letter per connection whose data had started and whose outcome is not
    /// recorded. While the run is stopping, no gate opens: those letters are not handed over.
    /// When the ledger cannot be written, nothing of it is recorded or reported and no gate
    /// opens.
    fn commit(&mut self, gates: Vec<Waiting>) -> Result<()> {
        let answer = match &self.summary.stopped {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        };
        if answer.is_ok() {
            self.changes
                .extend(gates.iter().map(|(attempt, _)| Change::Data(*attempt)));
        }
        if !self.changes.is_empty() {
            let now = clock::stamp_time(clock::now());
            if let Err(e) = self.ledger.record(&self.changes, self.kind, &now) {
                // Those letters do not go out: their data marks are taken back, and every
                // letter waiting at its gate is told so. The rest waits for another try (the
                // run's tail), and the letters whose failure is not recorded are not waiting for
                // a retry either.
                self.changes.retain(|c| !matches!(c, Change::Data(_)));
                for (_, tell) in gates {
                    let _ = tell.send(Err(Stop::Interrupted));
                }
                let again: Vec<&str> = self
                    .unreported
                    .iter()
                    .filter(|(job, _)| self.retrying.iter().any(|(a, _)| *a == job.attempt))
                    .map(|(job, _)| job.letter.key.as_str())
                    .collect();
                self.retries
                    .retain(|Reverse(r)| !again.contains(&r.letter.key.as_str()));
                return Err(e);
            }
        }
        for change in self.changes.drain(..) {
            match change {
                Change::Start(_) => self.open += 1,
                Change::Finish(_) | Change::Abandon { .. } => {
                    self.open = self.open.saturating_sub(1)
                }
                Change::Data(_) => {}
            }
        }
        for (_, tell) in gates {
            let _ = tell.send(answer.clone());
        }
        self.report_by = None;
        let finished = std::mem::take(&mut self.unreported);
        let retrying = std::mem::take(&mut self.retrying);
        self.report(finished, &retrying);
        Ok(())
    }

    /// How long to wait before trying this letter again, if it is to be tried again.
    fn retry_wait(&self, job: &Job, done: &Done) -> Option<Duration> {
        let Done::Handed(outcome) = done else {
            return None;
        };
        let again = outcome.parts().0 == State::FailedTemporary
            && job.tries <= self.pace.retries
            && self.summary.stopped.is_none();
        again.then(|| self.pace.retry_delay * 2u32.saturating_pow(job.tries - 1))
    }

    /// Puts the letters to try again in the queue of retries; returns the attempts that failed
    /// and the waits.
    fn schedule_retries(&mut self, finished: &[(Job, Done)]) -> Vec<(i64, Duration)> {
        let mut attempts = Vec::new();
        for (job, done) in finished {
            if let Some(wait) = self.retry_wait(job, done) {
                attempts.push((job.attempt, wait));
                self.retries.push(Reverse(Retry {
                    due: Instant::now() + wait,
                    letter: job.letter.clone(),
                    before: job.before,
                    tries: job.tries,
                }));
            }
        }
        attempts
    }

    /// Reports recorded outcomes; `retrying` are the attempts whose letters `schedule_retries`
    /// queued again.
    fn report(&mut self, finished: Vec<(Job, Done)>, retrying: &[(i64, Duration)]) {
        for (job, done) in finished {
            let wait = retrying
                .iter()
                .find(|(attempt, _)| *attempt == job.attempt)
                .map(|(_, wait)| *wait);
            if let (Some(wait), Done::Handed(outcome)) = (wait, &done) {
                self.flowing = false;
                self.observer
                    .retrying(&job.letter, job.tries, wait, outcome.parts().2);
                continue;
            }
            match done {
                Done::Handed(outcome) => {
                    let (state, _, reply) = outcome.parts();
                    self.reported += 1;
                    self.observer
                        .letter_done(self.reported, self.total, &job.letter, state, reply);
                    match state {
                        State::Delivered => self.summary.delivered += 1,
                        State::FailedTemporary => self.summary.failed_temporary += 1,
                        State::FailedPermanent => self.summary.failed_permanent += 1,
                        _ => self.summary.unknown += 1,
                    }
                }
                Done::Crashed {
                    stop,
                    data_started: true,
                } => {
                    self.flowing = false;
                    self.reported += 1;
                    let reply = stop.to_string();
                    self.observer.letter_done(
                        self.reported,
                        self.total,
                        &job.letter,
                        State::Unknown,
                        &reply,
                    );
                    self.summary.unknown += 1;
                    if self.summary.stopped.is_none() {
                        self.summary.stopped = Some(stop);
                    }
                }
                Done::Stopped(stop) | Done::Crashed { stop, .. } => {
                    self.flowing = false;
                    self.count_unsent(&job);
                    if self.summary.stopped.is_none() {
                        self.summary.stopped = Some(stop);
                    }
                }
                Done::Skipped => {
                    self.flowing = false;
                    self.count_unsent(&job);
                }
            }
        }
    }

    /// A letter not handed over after all: failed for now after an earlier try, else left.
    fn count_unsent(&mut self, job: &Job) {
        if job.tries > 1 {
            self.summary.failed_temporary += 1;
        } else {
            self.summary.left += 1;
        }
    }
    /// The summary of a run the ledger stopped: what was recorded, what it could not record
    /// (left `sending`), and what was never handed over (pending).
    fn stopped_by_ledger(mut self, failed: LedgerWriteError) -> Summary {
        // Letters waiting for a retry stay failed-temporary, as recorded.
        self.summary.failed_temporary += self.retries.len();
        self.summary.unrecorded = self.open;
        let s = &self.summary;
        self.summary.left = self
            .total
            .saturating_sub(s.delivered + s.failed() + s.unrecorded);
        self.summary.stopped = Some(Stop::LedgerUnwritable(failed));
        self.summary
    }
}

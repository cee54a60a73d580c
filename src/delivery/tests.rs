//! The send loop, driven by a scripted transport, over a real campaign and a real SQLite ledger in
//! a temporary folder.
//!
//! The script says, letter by letter, what the "server" answers: accept, 4xx, 5xx, a drop before
//! or after the final dot, a slow reply, a refusal that stops the run, or Ctrl-C. At every
//! hand-over the transport reads the ledger through a connection of its own, as a crash would
//! leave it; the observer does the same when it hears of an outcome. Timing is only ever checked
//! as a lower bound. The stop after connection failures in a row is the SMTP adapter's rule, so
//! its test drives the adapter against a scripted SMTP server on the loopback interface.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::*;
use crate::campaign::plan::{Mode, Planner, Selection};
use crate::delivery::transport::Gate;
use crate::letter::compose::Composed;
use crate::record::ledger::Listed;
use crate::smtp::Failure;

/// Every test that runs the loop holds this: `STOP` is one flag for the whole process.
static LOOP: Mutex<()> = Mutex::new(());

/// Serialises the send-loop tests and clears Ctrl-C before and after each.
struct Serial {
    _guard: MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    let guard = LOOP.lock().unwrap_or_else(PoisonError::into_inner);
    STOP.store(false, Ordering::SeqCst);
    Serial { _guard: guard }
}

impl Drop for Serial {
    fn drop(&mut self) {
        STOP.store(false, Ordering::SeqCst);
    }
}

/// How long a scripted reply waits for something before giving up (a hung loop fails, not hangs).
const PATIENCE: Duration = Duration::from_secs(30);

fn key(i: usize) -> String {
    (101 + i).to_string()
}

fn address(i: usize) -> String {
    format!("k{}@example.dk", 101 + i)
}

/// The key of the recipient with this address.
fn key_of(address: &str) -> &str {
    &address[1..4]
}

/// What the server does with one letter.
#[derive(Debug, Clone)]
enum Step {
    Accept,
    /// 451: try again later.
    Soft,
    /// 450 to RCPT TO: try again later; the gate is not reached and no data goes out.
    SoftBeforeData,
    /// 550: refused for good.
    Hard,
    /// The connection broke before the final dot: nothing was delivered.
    DropBeforeDot,
    /// The connection broke after the final dot: it may have been delivered.
    DropAfterDot,
    /// The server refuses the login: the run must stop, this letter was not handed over.
    Refuse,
    /// Accepts, but only once this letter has been handed over too (a slow reply).
    AcceptAfter(usize),
    /// Once this letter has been handed over too, Ctrl-C is pressed; then accepts.
    CtrlCAfter(usize),
    /// Accepts once Ctrl-C has been pressed.
    AcceptAfterCtrlC,
    /// rundbrev itself fails (panics) once the letter's data has started.
    Panic,
    /// rundbrev itself fails (panics) before the letter's gate.
    PanicBeforeGate,
}

/// One hand-over as the transport saw it.
#[derive(Debug, Clone)]
struct Handover {
    address: String,
    start: Instant,
    end: Instant,
    /// Every recipient's state in the ledger on disk at the moment of hand-over.
    on_disk: BTreeMap<String, State>,
}

#[derive(Default)]
struct Log {
    /// Addresses in the order they reached the transport.
    started: Vec<String>,
    handovers: Vec<Handover>,
    /// Scripted waits that ran out of patience.
    gave_up: Vec<String>,
}

/// The script and what happened, shared by every scripted transport of a run.
struct Script {
    steps: Mutex<HashMap<String, VecDeque<Step>>>,
    log: Mutex<Log>,
    changed: Condvar,
    ledger: PathBuf,
}

impl Script {
    fn new(ledger: PathBuf, steps: &[(usize, &[Step])]) -> Arc<Script> {
        let steps = steps
            .iter()
            .map(|(i, s)| (address(*i), s.iter().cloned().collect()))
            .collect();
        Arc::new(Script {
            steps: Mutex::new(steps),
            log: Mutex::new(Log::default()),
            changed: Condvar::new(),
            ledger,
        })
    }

    /// Whether the next step for `address` is one `is` picks, taken if so.
    fn next_is(&self, address: &str, is: impl Fn(&Step) -> bool) -> bool {
        let mut steps = self.steps.lock().unwrap();
        let queue = steps.get_mut(address);
        match queue {
            Some(q) if q.front().is_some_and(&is) => q.pop_front().is_some(),
            _ => false,
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `ready` holds for the log; false when it never did.
    fn wait_for(&self, ready: impl Fn(&Log) -> bool) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut log = self.log();
        while !ready(&log) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            log = self
                .changed
                .wait_timeout(log, left.min(Duration::from_millis(20)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn handovers(&self) -> Vec<Handover> {
        self.log().handovers.clone()
    }

    /// How many times each address reached the transport.
    fn tries(&self) -> BTreeMap<String, usize> {
        let mut tries = BTreeMap::new();
        for a in &self.log().started {
            *tries.entry(a.clone()).or_default() += 1;
        }
        tries
    }
}

/// A transport that answers as the script says and notes what the ledger held at each hand-over.
struct Scripted {
    script: Arc<Script>,
}

impl Transport for Scripted {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn send_through(
        &mut self,
        message: &Composed,
        name: &str,
        gate: &mut Gate<'_>,
    ) -> Result<Outcome, Stop> {
        let to = &message.envelope_to[0];
        if self
            .script
            .next_is(to, |s| matches!(s, Step::PanicBeforeGate))
        {
            panic!("a scripted fault before the gate");
        }
        if self
            .script
            .next_is(to, |s| matches!(s, Step::SoftBeforeData))
        {
            return Ok(Outcome::Temporary {
                code: Some(450),
                reply: "450 4.2.1 mailbox busy".into(),
                data_sent: false,
            });
        }
        gate()?;
        self.send(message, name)
    }

    fn send(&mut self, message: &Composed, _name: &str) -> Result<Outcome, Stop> {
        let start = Instant::now();
        let address = message.envelope_to[0].clone();
        let reader = Ledger::open_existing(&self.script.ledger)
            .expect("the ledger can be read")
            .expect("the ledger exists");
        let on_disk = reader
            .records()
            .expect("the ledger can be read")
            .into_iter()
            .map(|r| (r.key, r.state))
            .collect();
        drop(reader);
        self.script.log().started.push(address.clone());
        self.script.changed.notify_all();
        let step = self
            .script
            .steps
            .lock()
            .unwrap()
            .get_mut(&address)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Step::Accept);
        let handed = |i: usize| {
            let other = self::address(i);
            move |log: &Log| log.started.contains(&other)
        };
        let waited = match &step {
            Step::AcceptAfter(i) => self.script.wait_for(handed(*i)),
            Step::CtrlCAfter(i) => {
                let ok = self.script.wait_for(handed(*i));
                STOP.store(true, Ordering::SeqCst);
                ok
            }
            Step::AcceptAfterCtrlC => self.script.wait_for(|_| STOP.load(Ordering::SeqCst)),
            _ => true,
        };
        let result = match step {
            Step::Soft => Ok(Outcome::Temporary {
                code: Some(451),
                reply: "451 4.3.0 try again later".into(),
                data_sent: true,
            }),
            Step::Hard => Ok(Outcome::Permanent {
                code: Some(550),
                reply: "550 5.1.1 no such mailbox".into(),
                data_sent: false,
            }),
            Step::DropBeforeDot => Ok(Outcome::Temporary {
                code: None,
                reply: "the connection broke before the end of the message".into(),
                data_sent: true,
            }),
            Step::DropAfterDot => Ok(Outcome::Unknown {
                reply: "the connection broke after the end of the message".into(),
            }),
            Step::Refuse => Err(refused()),
            Step::Panic | Step::PanicBeforeGate | Step::SoftBeforeData => {
                panic!("a scripted fault")
            }
            Step::Accept | Step::AcceptAfter(_) | Step::CtrlCAfter(_) | Step::AcceptAfterCtrlC => {
                Ok(Outcome::Delivered {
                    code: Some(250),
                    reply: "250 2.0.0 queued".into(),
                })
            }
        };
        let mut log = self.script.log();
        if !waited {
            log.gave_up.push(address.clone());
        }
        if result.is_ok() {
            log.handovers.push(Handover {
                address,
                start,
                end: Instant::now(),
                on_disk,
            });
        }
        drop(log);
        self.script.changed.notify_all();
        result
    }
}

fn refused() -> Stop {
    Stop::ServerRefused(Failure::Login {
        reply: None,
        message: "the server refused the login".into(),
    })
}

/// What the person watching heard, with what the ledger on disk said at that moment.
struct Watcher {
    reader: Ledger,
    /// Key, the state reported, the state on disk.
    done: Vec<(String, State, State)>,
    /// Key, the attempt, the wait.
    retrying: Vec<(String, u32, Duration)>,
}

impl Observer for Watcher {
    fn letter_done(&mut self, _: usize, _: usize, letter: &Letter, state: State, _: &str) {
        let on_disk = self.reader.lookup(&letter.key).unwrap().unwrap().state;
        self.done.push((letter.key.clone(), state, on_disk));
    }

    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: Duration, _: &str) {
        self.retrying.push((letter.key.clone(), attempt, wait));
    }
}

/// A small campaign in a temporary folder: `n` recipients, a one-line template, an outbox.
struct Campaign {
    _dir: tempfile::TempDir,
    p: Prepared,
    ledger: PathBuf,
}

fn campaign(n: usize) -> Campaign {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("recipients")).unwrap();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    let mut csv = String::from("kommunekode,navn,email\n");
    for i in 0..n {
        csv.push_str(&format!("{},Kommune {},{}\n", key(i), key(i), address(i)));
    }
    std::fs::write(root.join("recipients/kommuner.csv"), csv).unwrap();
    std::fs::write(
        root.join("templates/rundbrev.md"),
        "Til {{ navn }}\n\nEt brev.\n",
    )
    .unwrap();
    let text = r#"
[campaign]
id = "test"
subject = "Brev til {{ navn }}"

[sender]
from = "Ministeriet <uim@uim.dk>"

[stamps]
letter_date = "2020-06-29"
sags_nr = "2020-1"
akt_id_first = "1000"
"#;
    let path = root.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = crate::config::load(&path).unwrap_or_else(|p| panic!("{}", shown(&p)));
    let ledger = Ledger::path_for(&config.ledger_dir, &config.campaign.id);
    let p = crate::campaign::prepare(config, None, clock::now())
        .unwrap_or_else(|p| panic!("{}", shown(&p)));
    Campaign {
        _dir: dir,
        p,
        ledger,
    }
}

fn shown(problems: &[crate::problem::Problem]) -> String {
    problems.iter().map(|p| format!("{p}\n")).collect()
}

/// No retries, no rate limit.
fn plain() -> Pace {
    Pace {
        retries: 0,
        retry_delay: Duration::ZERO,
        rate_per_minute: None,
    }
}

/// What a run left behind.
struct Ran {
    summary: Summary,
    watcher: Watcher,
    /// Each recipient's state and attempts in the ledger after the run.
    after: BTreeMap<String, (State, i64)>,
}

impl Ran {
    fn state(&self, i: usize) -> State {
        self.after[&key(i)].0
    }

    fn attempts(&self, i: usize) -> i64 {
        self.after[&key(i)].1
    }
}

/// Sends the whole campaign over `connections` scripted transports.
/// The recipient list brought in line with the file and the run planned, as `send` does.
fn planned(c: &Campaign) -> (Ledger, Plan) {
    let mut ledger = Ledger::create_or_open(&c.ledger).unwrap();
    let now = clock::stamp_time(clock::now());
    let selection = Selection::default();
    let mut planner = Planner::new(Mode::Send, &selection);
    let mut enlisting = ledger.enlist(&now).unwrap();
    for letter in c.p.letters(None).unwrap() {
        let letter = letter.unwrap();
        planner.add_letter(&letter);
        enlisting
            .add(&Listed {
                key: letter.key.as_str().into(),
                position: letter.index as i64,
                address: letter.to.email.as_str().into(),
                name: letter.to.name.as_str().into(),
            })
            .unwrap();
    }
    enlisting.commit().unwrap();
    (ledger, planner.finish())
}

fn scripted(connections: usize, script: &Arc<Script>) -> Vec<Box<dyn Transport + Send>> {
    (0..connections)
        .map(|_| {
            Box::new(Scripted {
                script: Arc::clone(script),
            }) as Box<dyn Transport + Send>
        })
        .collect()
}

fn run(c: &Campaign, connections: usize, script: &Arc<Script>, pace: Pace) -> Ran {
    let (mut ledger, plan) = planned(c);
    let reader = Ledger::open_existing(&c.ledger).unwrap();
    let transports = scripted(connections, script);
    let mut watcher = Watcher {
        reader: Ledger::open_existing(&c.ledger).unwrap().unwrap(),
        done: Vec::new(),
        retrying: Vec::new(),
    };
    let summary = execute(
        &c.p,
        reader.as_ref(),
        &mut ledger,
        transports,
        &plan,
        pace,
        &mut watcher,
    )
    .unwrap();
    let after = ledger
        .records()
        .unwrap()
        .into_iter()
        .map(|r| (r.key.clone(), (r.state, attempts_of(&ledger, &r.key))))
        .collect();
    assert!(
        script.log().gave_up.is_empty(),
        "a scripted reply waited in vain for: {:?}",
        script.log().gave_up
    );
    Ran {
        summary,
        watcher,
        after,
    }
}

fn attempts_of(ledger: &Ledger, key: &str) -> i64 {
    ledger.lookup(key).unwrap().unwrap().attempts
}

#[test]
fn an_accepted_letter_is_delivered_and_recorded_before_it_is_reported() {
    let _serial = serial();
    let c = campaign(3);
    let script = Script::new(c.ledger.clone(), &[]);
    let ran = run(&c, 1, &script, plain());
    assert_eq!(
        ran.summary,
        Summary {
            delivered: 3,
            ..Summary::default()
        }
    );
    assert_eq!(ran.watcher.done.len(), 3);
    for (key, reported, on_disk) in &ran.watcher.done {
        assert_eq!(
            (*reported, *on_disk),
            (State::Delivered, State::Delivered),
            "{key}"
        );
    }
    for i in 0..3 {
        assert_eq!((ran.state(i), ran.attempts(i)), (State::Delivered, 1));
    }
}

#[test]
fn a_row_changed_after_the_check_stops_the_run_before_any_letter_of_its_group() {
    let _serial = serial();
    let n = crate::campaign::plan::GROUP + 10;
    let c = campaign(n);
    let (mut ledger, plan) = planned(&c);
    // A clerk edits one row of the second group while the run is about to start.
    let file = c._dir.path().join("recipients/kommuner.csv");
    let changed_row = n - 3;
    let csv = std::fs::read_to_string(&file).unwrap().replace(
        &format!("Kommune {}", key(changed_row)),
        &format!("Kommune {} (ny)", key(changed_row)),
    );
    std::fs::write(&file, csv).unwrap();
    let script = Script::new(c.ledger.clone(), &[]);
    let mut watcher = Watcher {
        reader: Ledger::open_existing(&c.ledger).unwrap().unwrap(),
        done: Vec::new(),
        retrying: Vec::new(),
    };
    let reader = Ledger::open_existing(&c.ledger).unwrap();
    let error = execute(
        &c.p,
        reader.as_ref(),
        &mut ledger,
        scripted(1, &script),
        &plan,
        plain(),
        &mut watcher,
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("changed after the letters were checked"),
        "{error:#}"
    );
    // Letters of the first group went out (the run stops as soon as it reads the second, and
    // the letters queued then stay as they were); nothing of the group with the changed row did.
    let started = script.log().started.clone();
    assert!(!started.is_empty() && started.len() <= crate::campaign::plan::GROUP);
    assert!(started
        .iter()
        .all(|a| key_of(a) < key(crate::campaign::plan::GROUP).as_str()));
    // What came back before the run stopped is recorded: every letter handed over is delivered
    // in the ledger, none left `sending`.
    for address in &started {
        let key = key_of(address);
        assert_eq!(
            ledger.lookup(key).unwrap().unwrap().state,
            State::Delivered,
            "{key}"
        );
    }
    for i in crate::campaign::plan::GROUP..n {
        assert_eq!(
            ledger.lookup(&key(i)).unwrap().unwrap().state,
            State::Pending,
            "{i}"
        );
    }
}

#[test]
fn a_4xx_is_retried_with_growing_waits_then_left_failed_for_now() {
    let _serial = serial();
    let c = campaign(1);
    let script = Script::new(
        c.ledger.clone(),
        &[(0, &[Step::Soft, Step::Soft, Step::Soft])],
    );
    let pace = Pace {
        retries: 2,
        retry_delay: Duration::from_millis(40),
        rate_per_minute: None,
    };
    let ran = run(&c, 1, &script, pace);
    let waits = [Duration::from_millis(40), Duration::from_millis(80)];
    assert_eq!(
        ran.watcher.retrying,
        vec![(key(0), 1, waits[0]), (key(0), 2, waits[1])]
    );
    let handovers = script.handovers();
    assert_eq!(handovers.len(), 3, "one try and two retries");
    for (k, pair) in handovers.windows(2).enumerate() {
        assert!(
            pair[1].start >= pair[0].end + waits[k],
            "retry {} came before its wait of {:?}",
            k + 1,
            waits[k]
        );
    }
    assert_eq!((ran.state(0), ran.attempts(0)), (State::FailedTemporary, 3));
    assert_eq!(
        ran.watcher.done,
        vec![(key(0), State::FailedTemporary, State::FailedTemporary)]
    );
    assert_eq!(ran.summary.failed_temporary, 1);
    assert_eq!(ran.summary.failed(), 1);
}

#[test]
fn a_letter_refused_for_now_before_its_data_and_retried_at_once_is_counted_once() {
    let _serial = serial();
    let c = campaign(2);
    // No try reaches the gate, so all of them can fall into one commit.
    let script = Script::new(
        c.ledger.clone(),
        &[(
            0,
            &[
                Step::SoftBeforeData,
                Step::SoftBeforeData,
                Step::SoftBeforeData,
            ],
        )],
    );
    let pace = Pace {
        retries: 2,
        ..plain()
    };
    let ran = run(&c, 1, &script, pace);
    assert_eq!(
        ran.watcher.retrying,
        vec![(key(0), 1, Duration::ZERO), (key(0), 2, Duration::ZERO)]
    );
    assert_eq!(
        ran.summary,
        Summary {
            delivered: 1,
            failed_temporary: 1,
            ..Summary::default()
        }
    );
    assert_eq!((ran.state(0), ran.attempts(0)), (State::FailedTemporary, 3));
    assert!(ran
        .watcher
        .done
        .contains(&(key(0), State::FailedTemporary, State::FailedTemporary)));
}

#[test]
fn a_success_after_a_4xx_is_delivered_with_both_attempts_counted() {
    let _serial = serial();
    let c = campaign(2);
    let script = Script::new(c.ledger.clone(), &[(0, &[Step::Soft, Step::Accept])]);
    let pace = Pace {
        retries: 2,
        retry_delay: Duration::from_millis(10),
        rate_per_minute: None,
    };
    let ran = run(&c, 1, &script, pace);
    assert_eq!(ran.watcher.retrying.len(), 1);
    assert_eq!((ran.state(0), ran.attempts(0)), (State::Delivered, 2));
    assert_eq!((ran.state(1), ran.attempts(1)), (State::Delivered, 1));
    assert_eq!(
        ran.summary,
        Summary {
            delivered: 2,
            ..Summary::default()
        }
    );
}

#[test]
fn a_5xx_fails_for_good_and_is_never_retried() {
    let _serial = serial();
    let c = campaign(2);
    let script = Script::new(c.ledger.clone(), &[(0, &[Step::Hard, Step::Accept])]);
    let pace = Pace {
        retries: 3,
        retry_delay: Duration::from_millis(10),
        rate_per_minute: None,
    };
    let ran = run(&c, 1, &script, pace);
    assert_eq!(script.tries()[&address(0)], 1);
    assert!(ran.watcher.retrying.is_empty());
    assert_eq!((ran.state(0), ran.attempts(0)), (State::FailedPermanent, 1));
    assert_eq!(ran.state(1), State::Delivered);
    assert_eq!(
        (ran.summary.failed_permanent, ran.summary.delivered),
        (1, 1)
    );
}

#[test]
fn a_drop_before_the_final_dot_is_retried() {
    let _serial = serial();
    let c = campaign(1);
    let script = Script::new(c.ledger.clone(), &[(0, &[Step::DropBeforeDot])]);
    let pace = Pace {
        retries: 1,
        retry_delay: Duration::from_millis(10),
        rate_per_minute: None,
    };
    let ran = run(&c, 1, &script, pace);
    assert_eq!(script.tries()[&address(0)], 2);
    assert_eq!((ran.state(0), ran.attempts(0)), (State::Delivered, 2));
    assert_eq!(ran.summary.delivered, 1);
}

#[test]
fn a_drop_after_the_final_dot_is_unknown_and_never_retried() {
    let _serial = serial();
    let c = campaign(2);
    let script = Script::new(
        c.ledger.clone(),
        &[(0, &[Step::DropAfterDot, Step::Accept])],
    );
    let pace = Pace {
        retries: 3,
        retry_delay: Duration::from_millis(10),
        rate_per_minute: None,
    };
    let ran = run(&c, 1, &script, pace);
    assert_eq!(script.tries()[&address(0)], 1, "it may have arrived");
    assert!(ran.watcher.retrying.is_empty());
    assert_eq!((ran.state(0), ran.attempts(0)), (State::Unknown, 1));
    assert_eq!((ran.summary.unknown, ran.summary.delivered), (1, 1));
}

#[test]
fn a_slow_reply_does_not_hold_up_the_other_connection() {
    let _serial = serial();
    let c = campaign(5);
    // The first letter's reply comes only after the last letter has been handed over.
    let script = Script::new(c.ledger.clone(), &[(0, &[Step::AcceptAfter(4)])]);
    let ran = run(&c, 2, &script, plain());
    let tries = script.tries();
    assert_eq!(tries.len(), 5);
    assert!(
        tries.values().all(|&n| n == 1),
        "a letter handed over twice: {tries:?}"
    );
    assert!((0..5).all(|i| ran.state(i) == State::Delivered));
    assert_eq!(ran.summary.delivered, 5);
}

#[test]
fn a_fault_in_rundbrev_after_the_data_started_stops_the_run_and_leaves_the_letter_unknown() {
    let _serial = serial();
    let c = campaign(5);
    let script = Script::new(c.ledger.clone(), &[(2, &[Step::Panic])]);
    // Before, the coordinator waited for ever for the letter whose thread had panicked.
    let ran = run(&c, 1, &script, plain());
    assert!(
        matches!(&ran.summary.stopped, Some(Stop::Internal { what }) if what == "a scripted fault"),
        "{:?}",
        ran.summary.stopped
    );
    assert_eq!(
        (ran.summary.delivered, ran.summary.unknown, ran.summary.left),
        (2, 1, 2)
    );
    assert_eq!(
        (ran.state(2), ran.attempts(2)),
        (State::Unknown, 1),
        "its data had started: it may have arrived, so it is never pending again"
    );
    for i in 3..5 {
        assert_eq!((ran.state(i), ran.attempts(i)), (State::Pending, 0));
    }
    assert!(ran
        .watcher
        .done
        .contains(&(key(2), State::Unknown, State::Unknown)));
}

#[test]
fn a_fault_in_rundbrev_before_the_gate_stops_the_run_and_leaves_the_letter_pending() {
    let _serial = serial();
    let c = campaign(6);
    let script = Script::new(c.ledger.clone(), &[(2, &[Step::PanicBeforeGate])]);
    let ran = run(&c, 3, &script, plain());
    assert!(matches!(ran.summary.stopped, Some(Stop::Internal { .. })));
    assert_eq!(
        (ran.state(2), ran.attempts(2)),
        (State::Pending, 0),
        "nothing of it left rundbrev"
    );
    assert_eq!(ran.summary.unknown, 0);
    assert!(!script.log().started.contains(&address(2)));
    // Every letter is delivered or untouched: none is left `sending`.
    for i in 0..6 {
        assert!(
            matches!(ran.state(i), State::Delivered | State::Pending),
            "letter {i}: {:?}",
            ran.state(i)
        );
    }
}

#[test]
fn a_stop_from_the_transport_ends_the_run_and_leaves_the_rest_pending() {
    let _serial = serial();
    let c = campaign(5);
    let script = Script::new(c.ledger.clone(), &[(2, &[Step::Refuse])]);
    let ran = run(&c, 1, &script, plain());
    assert_eq!(
        ran.summary,
        Summary {
            delivered: 2,
            stopped: Some(refused()),
            left: 3,
            ..Summary::default()
        }
    );
    assert_eq!(
        script.log().started,
        vec![address(0), address(1), address(2)],
        "no letter after the refusal reached the transport"
    );
    for i in 0..2 {
        assert_eq!(ran.state(i), State::Delivered);
    }
    for i in 2..5 {
        assert_eq!(
            (ran.state(i), ran.attempts(i)),
            (State::Pending, 0),
            "letter {i} was never handed over"
        );
    }
}

#[test]
fn letters_are_marked_sending_on_disk_in_batches_before_they_are_handed_over() {
    let _serial = serial();
    let c = campaign(6);
    let script = Script::new(c.ledger.clone(), &[]);
    let ran = run(&c, 2, &script, plain());
    assert_eq!(ran.summary.delivered, 6);
    let handovers = script.handovers();
    assert_eq!(handovers.len(), 6);
    for h in &handovers {
        let own = &h.on_disk[key_of(&h.address)];
        assert_eq!(*own, State::Sending, "{} at hand-over", h.address);
        // While letters go through, each connection has one letter in hand and one waiting
        // (whose data has not started, so a crash would put it back, not make it unknown).
        let sending = h.on_disk.values().filter(|&&s| s == State::Sending).count();
        assert!(
            sending <= 4,
            "{sending} letters were sending over 2 connections"
        );
    }
    // The first two letters are marked together, in one transaction, before either goes out:
    // at the first hand-over neither is pending any more. (The other may already be delivered
    // by the time this hand-over reads the ledger, when the two connections race.)
    let first = handovers.iter().min_by_key(|h| h.start).unwrap();
    for k in [key(0), key(1)] {
        assert_ne!(
            first.on_disk[&k],
            State::Pending,
            "{k} at the first hand-over"
        );
    }
}

#[test]
fn the_rate_limit_spaces_hand_overs_at_least_the_interval_apart() {
    let _serial = serial();
    let c = campaign(4);
    let script = Script::new(c.ledger.clone(), &[]);
    let pace = Pace {
        retries: 0,
        retry_delay: Duration::ZERO,
        rate_per_minute: Some(300),
    };
    let interval = pace.interval().unwrap();
    let began = Instant::now();
    let ran = run(&c, 2, &script, pace);
    assert_eq!(ran.summary.delivered, 4);
    let mut starts: Vec<Instant> = script.handovers().iter().map(|h| h.start).collect();
    starts.sort();
    // The n-th hand-over cannot come before n intervals have passed (a lower bound only).
    for (n, start) in starts.iter().enumerate() {
        assert!(
            *start >= began + interval * n as u32,
            "hand-over {n} came {:?} after the start, before {:?}",
            start.duration_since(began),
            interval * n as u32
        );
    }
}

#[test]
fn ctrl_c_lets_the_letters_in_flight_finish_and_starts_no_new_one() {
    let _serial = serial();
    let c = campaign(6);
    // Both connections are busy when Ctrl-C is pressed; both letters then finish.
    let script = Script::new(
        c.ledger.clone(),
        &[(0, &[Step::CtrlCAfter(1)]), (1, &[Step::AcceptAfterCtrlC])],
    );
    let ran = run(&c, 2, &script, plain());
    assert_eq!(
        ran.summary,
        Summary {
            delivered: 2,
            stopped: Some(Stop::Interrupted),
            left: 4,
            ..Summary::default()
        }
    );
    assert_eq!(script.tries().len(), 2, "no new letter started");
    assert_eq!(
        (ran.state(0), ran.state(1)),
        (State::Delivered, State::Delivered)
    );
    for i in 2..6 {
        assert_eq!((ran.state(i), ran.attempts(i)), (State::Pending, 0));
    }
}

/// What a scripted SMTP session does.
enum Session {
    /// Greets with 421 and hangs up: the connection cannot be opened.
    Busy,
    /// Serves letters, each as the next `OnLetter` says.
    Serve(Vec<OnLetter>),
}

/// What a scripted SMTP server does with one letter.
#[derive(Clone, Copy, PartialEq)]
enum OnLetter {
    /// 250 after the final dot.
    Accept,
    /// Hangs up when asked for DATA, before any of the message was sent.
    HangUpAtData,
    /// Hangs up after the final dot, before replying.
    HangUpAfterDot,
}

/// A scripted SMTP server on the loopback interface, one session after another; after the last
/// one nothing listens any more. Returns the port and the number of sessions opened so far.
fn smtp_server(sessions: Vec<Session>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opened = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&opened);
    std::thread::spawn(move || {
        let mut listener = Some(listener);
        let total = sessions.len();
        for (n, session) in sessions.into_iter().enumerate() {
            let Ok((stream, _)) = listener.as_ref().unwrap().accept() else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            if n + 1 == total {
                listener = None;
            }
            let _ = serve(stream, session);
        }
        drop(listener);
    });
    (port, opened)
}

fn serve(stream: std::net::TcpStream, session: Session) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut letters = match session {
        Session::Busy => {
            out.write_all(b"421 4.3.2 too busy, try later\r\n")?;
            return Ok(());
        }
        Session::Serve(replies) => replies.into_iter(),
    };
    out.write_all(b"220 scripted ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
        match command.as_str() {
            "EHLO" | "HELO" => out.write_all(b"250 scripted\r\n")?,
            "DATA" => {
                let letter = letters.next().unwrap_or(OnLetter::Accept);
                if letter == OnLetter::HangUpAtData {
                    return Ok(());
                }
                out.write_all(b"354 go ahead\r\n")?;
                loop {
                    line.clear();
                    if lines.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                if letter == OnLetter::Accept {
                    out.write_all(b"250 2.0.0 queued\r\n")?;
                } else {
                    return Ok(());
                }
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"250 2.0.0 ok\r\n")?,
        }
    }
}

/// The SMTP adapter, connected to the scripted server on `port`.
fn adapter(port: u16, max_connection_failures: u32) -> smtp::SmtpTransport {
    let text = format!(
        r#"
[campaign]
id = "test"
subject = "Brev"

[sender]
from = "uim@uim.dk"

[stamps]
sags_nr = "1"
akt_id_first = "1"

[transport]
kind = "smtp"

[transport.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
max_connection_failures = {max_connection_failures}
connect_timeout_secs = 5
command_timeout_secs = 5
"#
    );
    let config = crate::config::parse(&text, std::path::Path::new("config.toml"))
        .unwrap_or_else(|p| panic!("{}", shown(&p)));
    let crate::config::Transport::Smtp(s) = &config.transport else {
        panic!("not smtp");
    };
    smtp::connect(s).unwrap()
}

fn smtp_letter() -> Composed {
    Composed {
        bytes: b"Subject: Brev\r\n\r\nEt brev.\r\n".to_vec(),
        envelope_from: "uim@uim.dk".into(),
        envelope_to: vec!["post@example.dk".into()],
        message_id: "brev.1@uim.dk".into(),
    }
}

#[test]
fn the_smtp_adapter_tells_a_drop_before_the_final_dot_from_one_after_it() {
    let (port, opened) = smtp_server(vec![
        Session::Serve(vec![OnLetter::HangUpAtData]),
        Session::Serve(vec![OnLetter::HangUpAfterDot]),
    ]);
    let mut transport = adapter(port, 3);
    let letter = smtp_letter();
    // Nothing of the message was sent: failed for now, worth a retry.
    let before = transport.send(&letter, "brev");
    assert!(
        matches!(before, Ok(Outcome::Temporary { .. })),
        "{before:?}"
    );
    // The whole message was sent: it may have arrived.
    let after = transport.send(&letter, "brev");
    assert!(matches!(after, Ok(Outcome::Unknown { .. })), "{after:?}");
    assert_eq!(
        opened.load(Ordering::SeqCst),
        2,
        "reconnected after the drop"
    );
}

#[test]
fn the_smtp_adapter_stops_after_connection_failures_in_a_row() {
    let (port, opened) = smtp_server(vec![
        Session::Serve(vec![OnLetter::HangUpAfterDot]),
        Session::Busy,
        Session::Serve(vec![OnLetter::Accept, OnLetter::HangUpAfterDot]),
        Session::Busy,
    ]);
    let mut transport = adapter(port, 3);
    let letter = smtp_letter();
    let mut send = || transport.send(&letter, "brev");
    // Dropped after the dot: a first break.
    assert!(matches!(send(), Ok(Outcome::Unknown { .. })));
    // A second break (the server is busy), then a session that works: the count starts again.
    assert!(matches!(send(), Ok(Outcome::Delivered { .. })));
    // Dropped, busy, and then nothing listens: three in a row.
    assert!(matches!(send(), Ok(Outcome::Unknown { .. })));
    match send() {
        Err(Stop::ConnectionFailures { times: 3, .. }) => {}
        other => panic!("expected a stop after 3 failures in a row, got {other:?}"),
    }
    assert_eq!(
        opened.load(Ordering::SeqCst),
        4,
        "the adapter reconnected until the third failure in a row"
    );
}

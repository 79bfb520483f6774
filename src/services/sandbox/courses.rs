//! The sandbox courses. Invariants: a course's `taken` never exceeds its
//! `seats`; a user holds at most one seat of a course.

use serde::{Deserialize, Serialize};

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::courses::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CourseRecord {
    pub course_id: String,
    pub title: String,
    pub price_cents: u64,
    pub seats: u64,
    #[serde(default)]
    pub taken: u64,
}

impl CourseRecord {
    fn left(&self) -> u64 {
        self.seats.saturating_sub(self.taken)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeatRecord {
    seat_id: String,
    course_id: String,
    user_id: String,
    released: bool,
}

pub(super) struct SandboxCourses(pub Ledger);

fn course(tx: &Tx, id: &str) -> TxResult<CourseRecord> {
    tx.require(&format!("course/{id}"), "course", id)
}

fn enrolment(tx: &Tx, l: &Learner) -> TxResult<Enrolment> {
    tx.require(
        &format!("enrolment/{}/{}", l.course_id, l.user_id),
        "enrolment",
        &format!("{} in {}", l.user_id, l.course_id),
    )
}

fn save_enrolment(tx: &Tx, e: &Enrolment) -> TxResult<()> {
    tx.put(&format!("enrolment/{}/{}", e.course_id, e.user_id), e)
}

fn already(l: &Learner, what: &str) -> ActionError {
    ActionError::new("already_enrolled", format!("user `{}` {what} `{}`", l.user_id, l.course_id))
}

impl Courses for SandboxCourses {
    fn get(&self, _: Ctx, request: CourseRef) -> ServiceFuture<Course> {
        ready(self.0.transact(|tx| {
            let c = course(tx, &request.course_id)?;
            Ok(Course {
                seats_left: c.left(),
                free: c.price_cents == 0,
                course_id: c.course_id,
                title: c.title,
                price_cents: c.price_cents,
                seats: c.seats,
            })
        }))
    }

    fn reserve_seat(&self, ctx: Ctx, request: Learner) -> ServiceFuture<Seat> {
        ready(self.0.once("reserve_seat", &ctx, |tx| {
            let mut c = course(tx, &request.course_id)?;
            let holder = format!("holder/{}/{}", c.course_id, request.user_id);
            if tx.get::<String>(&holder)?.is_some() {
                return abort(already(&request, "already holds a seat of"));
            }
            if c.left() == 0 {
                return abort(ActionError::new(
                    "course_full",
                    format!("all {} seats of `{}` are taken", c.seats, c.course_id),
                ));
            }
            c.taken += 1;
            tx.put(&format!("course/{}", c.course_id), &c)?;
            let seat_id = tx.next_id("seat", "seat")?;
            let seat = SeatRecord {
                seat_id: seat_id.clone(),
                course_id: c.course_id.clone(),
                user_id: request.user_id.clone(),
                released: false,
            };
            tx.put(&format!("seat/{seat_id}"), &seat)?;
            tx.put(&holder, &seat_id)?;
            Ok(Seat { seat_id, course_id: c.course_id.clone(), user_id: request.user_id.clone(), seats_left: c.left() })
        }))
    }

    fn release_seat(&self, ctx: Ctx, request: ReleaseSeat) -> ServiceFuture<SeatReleased> {
        ready(self.0.once("release_seat", &ctx, |tx| {
            let id = request.seat_id.as_deref();
            let found = tx.undo_target(id, request.key.as_deref(), &["reserve_seat"], |s: Seat| s.seat_id)?;
            let Some(seat_id) = found else {
                return Ok(SeatReleased { seat_id: None, released: false, seats_left: None });
            };
            let key = format!("seat/{seat_id}");
            let mut seat: SeatRecord = tx.require(&key, "seat", &seat_id)?;
            let mut c = course(tx, &seat.course_id)?;
            let released = !seat.released;
            if released {
                seat.released = true;
                c.taken = c.taken.saturating_sub(1);
                tx.put(&key, &seat)?;
                tx.put(&format!("course/{}", c.course_id), &c)?;
                tx.remove(&format!("holder/{}/{}", seat.course_id, seat.user_id))?;
            }
            Ok(SeatReleased { seat_id: Some(seat_id), released, seats_left: Some(c.left()) })
        }))
    }

    fn enrol(&self, ctx: Ctx, request: Learner) -> ServiceFuture<Enrolment> {
        ready(self.0.once("enrol", &ctx, |tx| {
            course(tx, &request.course_id)?;
            let key = format!("enrolment/{}/{}", request.course_id, request.user_id);
            if let Some(e) = tx.get::<Enrolment>(&key)? {
                if e.status == "active" {
                    return abort(already(&request, "is already enrolled in"));
                }
            }
            let e = Enrolment {
                enrolment_id: tx.next_id("enrolment_id", "enr")?,
                course_id: request.course_id.clone(),
                user_id: request.user_id.clone(),
                status: "active".into(),
                progress: None,
            };
            save_enrolment(tx, &e)?;
            Ok(e)
        }))
    }

    fn unenrol(&self, ctx: Ctx, request: Unenrol) -> ServiceFuture<Withdrawn> {
        ready(self.0.once("unenrol", &ctx, |tx| {
            let learner = Learner { course_id: request.course_id.clone(), user_id: request.user_id.clone() };
            let answer = |withdrawn| Withdrawn {
                course_id: learner.course_id.clone(),
                user_id: learner.user_id.clone(),
                withdrawn,
            };
            if tx.made_nothing("enrol", request.key.as_deref())? {
                return Ok(answer(false));
            }
            let mut e = enrolment(tx, &learner)?;
            let withdrawn = e.status != "withdrawn";
            e.status = "withdrawn".into();
            e.progress = None;
            save_enrolment(tx, &e)?;
            Ok(answer(withdrawn))
        }))
    }

    fn start_progress(&self, ctx: Ctx, request: Learner) -> ServiceFuture<Enrolment> {
        ready(self.0.once("start_progress", &ctx, |tx| {
            let mut e = enrolment(tx, &request)?;
            e.progress = Some(e.progress.unwrap_or(0));
            save_enrolment(tx, &e)?;
            Ok(e)
        }))
    }

    fn stop_progress(&self, ctx: Ctx, request: StopProgress) -> ServiceFuture<ProgressStopped> {
        ready(self.0.once("stop_progress", &ctx, |tx| {
            let learner = Learner { course_id: request.course_id.clone(), user_id: request.user_id.clone() };
            let answer = |stopped| ProgressStopped {
                course_id: learner.course_id.clone(),
                user_id: learner.user_id.clone(),
                stopped,
            };
            if tx.made_nothing("start_progress", request.key.as_deref())? {
                return Ok(answer(false));
            }
            let mut e = enrolment(tx, &learner)?;
            let stopped = e.progress.is_some();
            e.progress = None;
            save_enrolment(tx, &e)?;
            Ok(answer(stopped))
        }))
    }
}

pub(super) fn seed(ledger: &Ledger, courses: &[CourseRecord]) -> Result<(), ActionError> {
    ledger.transact(|tx| courses.iter().try_for_each(|c| tx.put(&format!("course/{}", c.course_id), c)))
}

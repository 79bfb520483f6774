//! Courses: seats, enrolments and progress tracking.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CourseRef {
    pub course_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Course {
    pub course_id: String,
    pub title: String,
    /// 0 for a free course.
    pub price_cents: u64,
    pub free: bool,
    pub seats: u64,
    pub seats_left: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Learner {
    pub course_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Seat {
    pub seat_id: String,
    pub course_id: String,
    pub user_id: String,
    pub seats_left: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseSeat {
    /// The seat to give back; or give `key`.
    #[serde(default)]
    pub seat_id: Option<String>,
    /// The idempotency key of the `reserve_seat` call (`{{step.key}}` in a
    /// compensate): found even when its answer was lost; nothing to release
    /// when it took no seat.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SeatReleased {
    /// None: the call named by `key` took no seat.
    pub seat_id: Option<String>,
    /// False when it had been released before, or there was none.
    pub released: bool,
    /// Seats left in the course; none when there was no seat.
    pub seats_left: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Unenrol {
    pub course_id: String,
    pub user_id: String,
    /// The idempotency key of the `enrol` call (`{{step.key}}` in a
    /// compensate): only the enrolment that call made is withdrawn, found even
    /// when its answer was lost; nothing is done when it made none (an
    /// enrolment from before stays).
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopProgress {
    pub course_id: String,
    pub user_id: String,
    /// The idempotency key of the `start_progress` call (`{{step.key}}` in a
    /// compensate): nothing is done when that call started nothing.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ProgressStopped {
    pub course_id: String,
    pub user_id: String,
    /// False when progress was not tracked, or the call named by `key` started nothing.
    pub stopped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Withdrawn {
    pub course_id: String,
    pub user_id: String,
    /// False when it had been withdrawn before, or the `enrol` call named by
    /// `key` enrolled no one.
    pub withdrawn: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Enrolment {
    pub enrolment_id: String,
    pub course_id: String,
    pub user_id: String,
    /// `active` or `withdrawn`.
    pub status: String,
    /// Percent done, while progress is tracked.
    pub progress: Option<u8>,
}

crate::service! {
    /// Courses of the learning platform.
    trait Courses, fn operations, service "courses" {
        /// Reads a course: its price and the seats left.
        get(CourseRef) -> Course, Effect::Read, ["not_found"];
        /// Takes a seat of a course for a user; never more seats than the course has.
        reserve_seat(Learner) -> Seat, undone_by("courses.release_seat"), ["course_full", "already_enrolled", "not_found"];
        /// Gives a seat back; releasing twice is harmless.
        release_seat(ReleaseSeat) -> SeatReleased, Effect::Irreversible, ["not_found"];
        /// Enrols a user in a course.
        enrol(Learner) -> Enrolment, undone_by("courses.unenrol"), ["already_enrolled", "not_found"];
        /// Withdraws an enrolment; withdrawing twice is harmless.
        unenrol(Unenrol) -> Withdrawn, Effect::Irreversible, ["not_found"];
        /// Starts tracking the learner's progress (at 0%).
        start_progress(Learner) -> Enrolment, undone_by("courses.stop_progress"), ["not_found"];
        /// Stops tracking the learner's progress.
        stop_progress(StopProgress) -> ProgressStopped, Effect::Irreversible, ["not_found"];
    }
}

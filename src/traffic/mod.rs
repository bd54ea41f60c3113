//! 123's download traffic: when its quota comes back after a 5113 ([`quota`]), the months it
//! is counted in ([`calendar`]), and the gateway's own meter and budgets ([`meter`]).

pub mod calendar;
pub mod meter;
pub mod quota;

pub use meter::{Meter, Refused, Scope};

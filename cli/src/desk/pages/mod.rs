//! The pages of the desk, one file per section; `layout` is the frame they share.

pub(crate) mod clients;
pub(crate) mod contacts;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod partners;
pub(crate) mod referrals;
pub(crate) mod review;
pub(crate) mod statistics;
pub(crate) mod team;

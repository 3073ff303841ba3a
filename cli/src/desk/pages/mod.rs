//! The pages of the desk, one file per section; `layout` is the frame they share.

pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod review;

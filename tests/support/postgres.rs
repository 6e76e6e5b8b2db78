//! SKELETON: built in this session.

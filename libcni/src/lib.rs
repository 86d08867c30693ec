//! Runtime side of CNI.

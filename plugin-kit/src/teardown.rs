//! Tolerant teardown: DEL and GC go on past a failed step, so one missing piece cannot keep
//! the others alive, and report every failure at the end.

use cni::Error;

/// The failures of a teardown so far.
#[derive(Debug, Default)]
pub struct Teardown {
    errors: Vec<Error>,
}

impl Teardown {
    pub fn new() -> Teardown {
        Teardown::default()
    }

    /// Runs one step; its failure is kept, prefixed with `what`, and the teardown goes on.
    pub fn step(&mut self, what: &str, f: impl FnOnce() -> Result<(), Error>) {
        if let Err(e) = f() {
            self.errors.push(e.context(what));
        }
    }

    /// Keeps a failure found elsewhere.
    pub fn push(&mut self, e: Error) {
        self.errors.push(e);
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Success when every step succeeded; otherwise one error with every message, carrying
    /// the first failure's code.
    pub fn finish(mut self) -> Result<(), Error> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(self.errors.remove(0)),
            _ => {
                let msgs: Vec<&str> = self.errors.iter().map(|e| e.msg.as_str()).collect();
                Err(Error::new(self.errors[0].code, msgs.join("; ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::error::code;

    #[test]
    fn every_step_runs_and_every_failure_is_reported_with_the_first_code() {
        let mut td = Teardown::new();
        let mut ran = Vec::new();
        td.step("one", || {
            ran.push(1);
            Err(Error::io("disk"))
        });
        td.step("two", || {
            ran.push(2);
            Ok(())
        });
        td.step("three", || {
            ran.push(3);
            Err(Error::internal("kernel"))
        });
        assert_eq!(ran, vec![1, 2, 3]);
        assert!(!td.is_clean());
        let err = td.finish().unwrap_err();
        assert_eq!(err.code, code::IO_FAILURE);
        assert!(err.msg.contains("one") && err.msg.contains("disk"));
        assert!(err.msg.contains("three") && err.msg.contains("kernel"));
    }

    #[test]
    fn a_clean_teardown_succeeds() {
        let mut td = Teardown::new();
        td.step("one", || Ok(()));
        assert!(td.is_clean());
        assert!(td.finish().is_ok());
    }
}

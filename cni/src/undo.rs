//! An undo stack for ADD: each step that changed something pushes its inverse; unless the ADD
//! completes and calls [`Undo::commit`], dropping the stack runs the inverses newest first.

/// How to take one step back; the error is only logged.
type Inverse = Box<dyn FnOnce() -> Result<(), String>>;

/// Steps to take back if the ADD does not complete.
#[derive(Default)]
pub struct Undo {
    steps: Vec<(String, Inverse)>,
}

impl Undo {
    pub fn new() -> Undo {
        Undo::default()
    }

    /// Records how to take back `what` (named for the log if the inverse fails).
    pub fn push(
        &mut self,
        what: impl Into<String>,
        inverse: impl FnOnce() -> Result<(), String> + 'static,
    ) {
        self.steps.push((what.into(), Box::new(inverse)));
    }

    /// The ADD completed: nothing is taken back.
    pub fn commit(mut self) {
        self.steps.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some((what, inverse)) = self.steps.pop() {
            if let Err(e) = inverse() {
                log::warn!("undo {what}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn runs_inverses_newest_first_unless_committed() {
        let log = Rc::new(RefCell::new(Vec::new()));
        {
            let mut undo = Undo::new();
            for i in 0..3 {
                let log = log.clone();
                undo.push(format!("step {i}"), move || {
                    log.borrow_mut().push(i);
                    Ok(())
                });
            }
        }
        assert_eq!(*log.borrow(), vec![2, 1, 0]);
        let mut undo = Undo::new();
        let l = log.clone();
        undo.push("kept", move || {
            l.borrow_mut().push(9);
            Ok(())
        });
        undo.commit();
        assert_eq!(log.borrow().len(), 3);
    }
}

//! Multi-turn conversations: where a request sits in one, and how the
//! next turn takes in the previous turn's actual answer.

use serde::{Deserialize, Serialize};

use super::message::{count_tokens, flatten, Message};
use super::tokenizer::Tokenizer;
use super::RequestPlan;

/// Where a request sits in a multi-turn conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Turn {
    /// The conversation's number in the run (0-based, in plan order).
    pub conversation: u64,
    /// The turn's place in its conversation (0 first).
    pub index: u32,
}

/// The plan `next` as it must be sent after `previous` was answered with
/// `previous_answer`: its messages become `previous`'s messages, then the
/// answer as an assistant message, then `next`'s own (new) messages; the
/// flattened prompt and the client token count follow. Everything else
/// (id, `max_tokens`, validation task, turn) stays `next`'s.
///
/// `previous` must be the plan as it was sent (itself continued, for a
/// third turn or later), so the history accumulates.
///
/// ```
/// use llmperf::workload::{continue_conversation, Message, RequestPlan, Role};
/// use llmperf::Tokenizer;
/// let tokenizer = Tokenizer::bundled();
/// let first = RequestPlan::new(0, vec![Message::user("Name a colour.")], tokenizer);
/// let second = RequestPlan::new(1, vec![Message::user("Another one?")], tokenizer);
/// let sent = continue_conversation(&second, &first, "Blue.", tokenizer);
/// let roles: Vec<Role> = sent.messages.iter().map(|m| m.role).collect();
/// assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
/// assert_eq!(sent.messages[1].content, "Blue.");
/// assert_eq!(sent.id, 1);
/// ```
pub fn continue_conversation(
    next: &RequestPlan,
    previous: &RequestPlan,
    previous_answer: &str,
    tokenizer: &Tokenizer,
) -> RequestPlan {
    let mut messages = Vec::with_capacity(previous.messages.len() + 1 + next.messages.len());
    messages.extend(previous.messages.iter().cloned());
    messages.push(Message::assistant(previous_answer));
    messages.extend(next.messages.iter().cloned());
    RequestPlan {
        prompt: flatten(&messages),
        input_tokens_client: count_tokens(&messages, tokenizer),
        messages,
        ..next.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Direction, Task};
    use crate::workload::Role;

    #[test]
    fn the_next_turn_carries_the_history_and_the_actual_answer() {
        let tokenizer = Tokenizer::bundled();
        let first = RequestPlan {
            turn: Some(Turn {
                conversation: 3,
                index: 0,
            }),
            ..RequestPlan::new(
                10,
                vec![
                    Message::system("Be brief."),
                    Message::user("Name a colour."),
                ],
                tokenizer,
            )
        };
        let task = Task {
            number: 1234,
            direction: Direction::DigitsToWords,
            reply: crate::validate::Reply::Only,
        };
        let second = RequestPlan {
            max_tokens: Some(9),
            task: Some(task.clone()),
            turn: Some(Turn {
                conversation: 3,
                index: 1,
            }),
            ..RequestPlan::new(11, vec![Message::user("Another?")], tokenizer)
        };
        let sent = continue_conversation(&second, &first, "Blue, of course.", tokenizer);
        assert_eq!(
            sent.messages,
            vec![
                Message::system("Be brief."),
                Message::user("Name a colour."),
                Message::assistant("Blue, of course."),
                Message::user("Another?"),
            ]
        );
        assert_eq!(
            (sent.id, sent.max_tokens, sent.task.clone(), sent.turn),
            (11, Some(9), Some(task), second.turn)
        );
        let expected_tokens: usize = [
            "Be brief.",
            "Name a colour.",
            "Blue, of course.",
            "Another?",
        ]
        .iter()
        .map(|text| tokenizer.count(text))
        .sum();
        assert_eq!(sent.input_tokens_client as usize, expected_tokens);
        assert!(sent.input_tokens_client > second.input_tokens_client);
        assert_eq!(sent.prompt, flatten(&sent.messages));
        assert!(sent
            .prompt
            .contains("Assistant: Blue, of course.\n\nUser: Another?"));

        // A third turn builds on the second as sent.
        let third = RequestPlan::new(12, vec![Message::user("And a third?")], tokenizer);
        let sent_third = continue_conversation(&third, &sent, "Green.", tokenizer);
        let roles: Vec<Role> = sent_third.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::System,
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
    }
}

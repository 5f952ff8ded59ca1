//! Chat messages: what a request sends, and its one-text form for
//! completion-style endpoints.

use serde::{Deserialize, Serialize};

use super::tokenizer::Tokenizer;

/// Who says a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model (a system prompt).
    System,
    /// The user's turn.
    User,
    /// The model's turn (an earlier answer).
    Assistant,
}

impl Role {
    /// The snake_case name used on the wire: `system`, `user`, `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// The label of this role's turns in a [`flatten`]ed prompt.
    fn label(self) -> &'static str {
        match self {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        }
    }
}

/// One chat message. Serializes as OpenAI's `{"role": "user", "content": "…"}`.
///
/// ```
/// use llmperf::workload::{Message, Role};
/// let message = Message::user("hello");
/// assert_eq!(message.role, Role::User);
/// assert_eq!(serde_json::to_string(&message).unwrap(), r#"{"role":"user","content":"hello"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message of `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }
}

/// The conversation as one text, for endpoint kinds that take a prompt
/// string (TGI, OpenAI completions, Together's legacy inference,
/// SageMaker `inputs`).
///
/// A lone user message is its own text, so a plain prompt is sent as it
/// always was. Anything else becomes role-labelled turns (`System:`,
/// `User:`, `Assistant:`) separated by a blank line, ending with an empty
/// `Assistant:` turn for the model to complete (unless the last message
/// already is the assistant's).
///
/// ```
/// use llmperf::workload::{flatten, Message};
/// assert_eq!(flatten(&[Message::user("Hi")]), "Hi");
/// assert_eq!(
///     flatten(&[Message::system("Be brief."), Message::user("Hi")]),
///     "System: Be brief.\n\nUser: Hi\n\nAssistant:"
/// );
/// ```
pub fn flatten(messages: &[Message]) -> String {
    if let [only] = messages {
        if only.role == Role::User {
            return only.content.clone();
        }
    }
    let mut text = String::new();
    for message in messages {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(message.role.label());
        text.push_str(": ");
        text.push_str(&message.content);
    }
    if messages
        .last()
        .is_some_and(|last| last.role != Role::Assistant)
    {
        text.push_str("\n\nAssistant:");
    }
    text
}

/// Tokens in the messages' contents: what the model reads, without the
/// chat template or role labels an endpoint adds (which the client cannot
/// know).
pub fn count_tokens(messages: &[Message], tokenizer: &Tokenizer) -> u32 {
    let total: usize = messages
        .iter()
        .map(|message| tokenizer.count(&message.content))
        .sum();
    u32::try_from(total).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_flattens_to_labelled_turns_ending_with_the_assistant_cue() {
        let messages = [
            Message::system("S"),
            Message::user("U1"),
            Message::assistant("A1"),
            Message::user("U2"),
        ];
        assert_eq!(
            flatten(&messages),
            "System: S\n\nUser: U1\n\nAssistant: A1\n\nUser: U2\n\nAssistant:"
        );
        // A prefilled answer is continued, not followed by another cue.
        assert_eq!(
            flatten(&[Message::user("U"), Message::assistant("A")]),
            "User: U\n\nAssistant: A"
        );
        assert_eq!(flatten(&[]), "");
    }

    #[test]
    fn token_counts_add_up_every_message() {
        let tokenizer = Tokenizer::bundled();
        let messages = [Message::system("hello world"), Message::user("hello")];
        assert_eq!(count_tokens(&messages, tokenizer), 3);
    }

    #[test]
    fn roles_serialize_in_snake_case() {
        let json = serde_json::to_string(&Message::assistant("x")).unwrap();
        assert_eq!(json, r#"{"role":"assistant","content":"x"}"#);
        let back: Message = serde_json::from_str(r#"{"role":"system","content":"y"}"#).unwrap();
        assert_eq!(back, Message::system("y"));
    }
}

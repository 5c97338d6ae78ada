//! Policy-level tests: the SDK glue, JSON bodies and the three SSE formats,
//! with the SDK's MockHost standing in for request attributes.

use serde_json::{json, Value};
use sluice_sdk::host::mock;
use sluice_sdk::rt::parse_config;
use sluice_sdk::sse;

use super::*;

fn policy(config: Value) -> OutputMask {
    let cfg = parse_config::<OutputMask>(&config.to_string()).unwrap();
    OutputMask::validate(&cfg).unwrap();
    OutputMask::new(cfg).unwrap()
}

fn guide() -> OutputMask {
    policy(json!({"outputFilter": {"maskPatterns": ["email", "phone", "ssn"]}}))
}

fn ctx(kind: AiKind) -> RequestContext {
    RequestContext {
        request_id: "r1".into(),
        route: "claude-agent".into(),
        backend: "claude-agent".into(),
        provider: Provider::Anthropic,
        kind,
        method: "POST".into(),
        path: "/claude/v1/messages".into(),
        query: None,
        client_ip: "127.0.0.1".into(),
        model: Some("m".into()),
        streaming: true,
    }
}

/// Run a stream through the policy on a fresh mock host.
fn run(p: &OutputMask, kind: AiKind, events: Vec<SseEvent>) -> Vec<SseEvent> {
    mock::reset();
    let c = ctx(kind);
    let mut out = Vec::new();
    for ev in events {
        out.extend(p.on_response_event(&c, ev));
    }
    out.extend(p.on_response_end(&c));
    out
}

fn named(name: &str, data: Value) -> SseEvent {
    sse::event(Some(name), &data)
}

fn anthropic_stream(deltas: &[&str]) -> Vec<SseEvent> {
    let mut v = vec![
        named(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for d in deltas {
        v.push(named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}})));
    }
    v.push(named(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    v.push(named("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})));
    v.push(named("message_stop", json!({"type": "message_stop"})));
    v
}

/// Text of the Anthropic text deltas for block `index`.
fn anthropic_text(events: &[SseEvent], index: u64) -> String {
    events
        .iter()
        .filter_map(|e| e.json())
        .filter(|v| {
            v["type"] == "content_block_delta"
                && v["index"] == index
                && v["delta"]["type"] == "text_delta"
        })
        .map(|v| v["delta"]["text"].as_str().unwrap().to_owned())
        .collect()
}

fn names(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.kind().unwrap_or_else(|| "<none>".into()))
        .collect()
}

/// The Anthropic stream keeps its shape: start events, deltas, stop, message_delta, message_stop.
fn assert_anthropic_shape(out: &[SseEvent]) {
    let n = names(out);
    assert_eq!(&n[..2], ["message_start", "content_block_start"], "{n:?}");
    assert_eq!(
        &n[n.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"],
        "{n:?}"
    );
    assert!(
        n[2..n.len() - 3].iter().all(|x| x == "content_block_delta"),
        "{n:?}"
    );
    for e in out
        .iter()
        .filter(|e| e.kind().as_deref() == Some("content_block_delta"))
    {
        assert_eq!(e.event.as_deref(), Some("content_block_delta"));
        assert_ne!(
            e.json().unwrap()["delta"]["text"],
            "",
            "empty deltas are dropped"
        );
    }
}

#[test]
fn hooks_follow_config() {
    let p = guide();
    assert_eq!(p.hooks(), Hooks::RESPONSE_BODY | Hooks::RESPONSE_EVENTS);
    let p = policy(json!({"outputFilter": {"maskRequest": true}}));
    assert!(p
        .hooks()
        .contains(Hooks::REQUEST_HEADERS | Hooks::REQUEST_BODY));
    let p = policy(
        json!({"promptGuard": {"request": [{"regex": {"action": "reject", "builtins": ["email"]}}]}}),
    );
    assert_eq!(p.hooks(), Hooks::empty());
    let p = policy(
        json!({"promptGuard": {"response": [{"regex": {"action": "mask", "builtins": ["email", "creditCard"]}}]}}),
    );
    assert_eq!(p.hooks(), Hooks::RESPONSE_BODY | Hooks::RESPONSE_EVENTS);
}

#[test]
fn invalid_config_is_rejected_with_the_key() {
    let cfg = parse_config::<OutputMask>(r#"{"outputFilter": {"maskPatterns": ["email", "dna"]}}"#)
        .unwrap();
    let e = OutputMask::validate(&cfg).unwrap_err();
    assert!(e.contains("outputFilter.maskPatterns[1]"), "{e}");
    let e = parse_config::<OutputMask>(r#"{"outputFilterz": {}}"#).unwrap_err();
    assert!(e.contains("outputFilterz"), "{e}");
}

#[test]
fn json_bodies_mask_text_only() {
    let p = guide();
    let c = ctx(AiKind::Messages);
    let body = json!({"id": "msg_1", "type": "message", "content": [
        {"type": "text", "text": "Mail bob@example.com or 555-123-4567, SSN 123-45-6789"},
        {"type": "tool_use", "id": "toolu_1", "name": "send", "input": {"to": "bob@example.com"}}],
        "usage": {"input_tokens": 5, "output_tokens": 7}});
    let BodyAction::Replace(out) = p.on_response_body(&c, 200, body.to_string().into_bytes())
    else {
        panic!("expected a rewrite");
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["content"][0]["text"],
        "Mail <EMAIL> or <PHONE>, SSN <SSN>"
    );
    assert_eq!(
        v["content"][1]["input"]["to"], "<EMAIL>",
        "tool inputs are text the client receives"
    );
    assert_eq!(v["content"][1]["id"], "toolu_1");
    assert_eq!(v["usage"], body["usage"]);
    assert_eq!(v["id"], "msg_1");

    let chat = json!({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "call 555-123-4567"}, "finish_reason": "stop"}]});
    let BodyAction::Replace(out) = p.on_response_body(&c, 200, chat.to_string().into_bytes())
    else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "call <PHONE>");

    let resp = json!({"id": "resp_1", "output": [{"type": "message", "content": [{"type": "output_text", "text": "a@b.io", "annotations": []}]}]});
    let BodyAction::Replace(out) = p.on_response_body(&c, 200, resp.to_string().into_bytes())
    else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "<EMAIL>");

    // Nothing to mask, errors, non-JSON: passed as they came.
    let clean = json!({"content": [{"type": "text", "text": "hello"}]})
        .to_string()
        .into_bytes();
    assert!(matches!(
        p.on_response_body(&c, 200, clean),
        BodyAction::Continue
    ));
    let err =
        json!({"type": "error", "error": {"message": "bob@example.com is over quota"}}).to_string();
    assert!(matches!(
        p.on_response_body(&c, 429, err.into_bytes()),
        BodyAction::Continue
    ));
    assert!(matches!(
        p.on_response_body(&c, 200, b"bob@example.com".to_vec()),
        BodyAction::Continue
    ));
}

#[test]
fn seed_split_stream_is_masked() {
    let p = guide();
    let out = run(
        &p,
        AiKind::Messages,
        anthropic_stream(&["Mail bob@exam", "ple.com or call 555-123-4567", " now"]),
    );
    assert_anthropic_shape(&out);
    let text = anthropic_text(&out, 0);
    assert_eq!(text, "Mail <EMAIL> or call <PHONE> now");
    let all: String = out.iter().map(|e| e.data.clone()).collect();
    assert!(
        !all.contains("bob@") && !all.contains("555-123") && !all.contains("ple.com"),
        "{all}"
    );
    // "Mail " goes out with the first delta; the split email waits.
    assert_eq!(out[2].json().unwrap()["delta"]["text"], "Mail ");
}

#[test]
fn anthropic_splits_at_every_position() {
    let p = guide();
    for secret in [
        "bob@example.com",
        "555-123-4567",
        "(555) 123-4567",
        "123-45-6789",
    ] {
        let text = format!("Contact {secret}, thanks.");
        let want = format!(
            "Contact {}, thanks.",
            match secret.as_bytes()[0] {
                b'b' => "<EMAIL>",
                b'1' => "<SSN>",
                _ => "<PHONE>",
            }
        );
        for i in 1..text.len() {
            let out = run(
                &p,
                AiKind::Messages,
                anthropic_stream(&[&text[..i], &text[i..]]),
            );
            assert_eq!(anthropic_text(&out, 0), want, "split at {i}");
            assert_anthropic_shape(&out);
        }
        // Three deltas, each cut inside or around the secret.
        let start = text.find(secret).unwrap();
        for i in start.saturating_sub(2)..start + secret.len() + 1 {
            for j in i + 1..text.len() {
                let out = run(
                    &p,
                    AiKind::Messages,
                    anthropic_stream(&[&text[..i], &text[i..j], &text[j..]]),
                );
                assert_eq!(anthropic_text(&out, 0), want, "split at {i},{j}");
                assert_anthropic_shape(&out);
            }
        }
    }
}

#[test]
fn held_tail_is_flushed_before_block_stop() {
    let p = guide();
    let out = run(
        &p,
        AiKind::Messages,
        anthropic_stream(&["Write to bob@example.com"]),
    );
    let n = names(&out);
    assert_eq!(
        n,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(out[2].json().unwrap()["delta"]["text"], "Write to ");
    assert_eq!(out[3].json().unwrap()["delta"]["text"], "<EMAIL>");
    assert_eq!(out[3].json().unwrap()["index"], 0);
}

#[test]
fn held_tail_is_flushed_before_a_mid_stream_error() {
    let p = guide();
    let mut events = anthropic_stream(&["Write to bob@example.com"]);
    // The stream breaks after the delta: an error event instead of the end.
    events.truncate(3);
    events.push(named(
        "error",
        serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
    ));
    let out = run(&p, AiKind::Messages, events);
    let n = names(&out);
    assert_eq!(n.last().map(String::as_str), Some("error"), "{n:?}");
    let text = anthropic_text(&out, 0);
    assert_eq!(text, "Write to <EMAIL>");
}

#[test]
fn no_over_holding() {
    let p = guide();
    mock::reset();
    let c = ctx(AiKind::Messages);
    let delta = |t: &str| {
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    // Text ending in whitespace or punctuation that cannot start a match goes out whole.
    let out = p.on_response_event(&c, delta("The quick brown fox jumps over the lazy dog. "));
    assert_eq!(
        out[0].json().unwrap()["delta"]["text"],
        "The quick brown fox jumps over the lazy dog. "
    );
    let out = p.on_response_event(&c, delta("Sure! Here is the plan:\n"));
    assert_eq!(
        out[0].json().unwrap()["delta"]["text"],
        "Sure! Here is the plan:\n"
    );
    // Otherwise only the last token waits.
    let out = p.on_response_event(&c, delta("1. Open the settings"));
    assert_eq!(out[0].json().unwrap()["delta"]["text"], "1. Open the ");
    let held = mock::with(|h| h.attrs.get("output-mask.tail.a0").cloned()).unwrap();
    assert!(held.contains("settings") && held.len() < 80, "{held}");
    let out = p.on_response_event(&c, delta(" menu. "));
    assert_eq!(out[0].json().unwrap()["delta"]["text"], "settings menu. ");
    assert_eq!(mock::with(|h| h.attrs["output-mask.open"].clone()), "[]");
    // Every attribute is namespaced.
    mock::with(|h| {
        assert!(
            h.attrs.keys().all(|k| k.starts_with("output-mask.")),
            "{:?}",
            h.attrs.keys()
        )
    });
}

#[test]
fn concurrent_blocks_and_other_deltas() {
    let p = guide();
    let d = |i: u64, t: &str| {
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let events = vec![
        named(
            "message_start",
            json!({"type": "message_start", "message": {"id": "m"}}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}),
        ),
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
        ),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        d(1, "First al"),
        d(2, "Second 555-12"),
        d(1, "ice@corp.io and"),
        d(2, "3-4567 ok"),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"to\": \"x@y.io\"}"}}),
        ),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        named(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        ),
        named("message_stop", json!({"type": "message_stop"})),
    ];
    let out = run(&p, AiKind::Messages, events);
    assert_eq!(anthropic_text(&out, 1), "First <EMAIL> and");
    assert_eq!(anthropic_text(&out, 2), "Second <PHONE> ok");
    let raw: String = out.iter().map(|e| e.data.clone()).collect();
    assert!(raw.contains("hmm"), "clean thinking passes");
    assert!(
        raw.contains(r#"{\"to\": \"<EMAIL>\"}"#) && !raw.contains("x@y.io"),
        "tool JSON is masked inside its strings: {raw}"
    );
    // Each block's flush comes before its own stop.
    let pos = |f: &dyn Fn(&Value) -> bool| {
        out.iter()
            .position(|e| e.json().is_some_and(|v| f(&v)))
            .unwrap()
    };
    let stop1 = pos(&|v| v["type"] == "content_block_stop" && v["index"] == 1);
    let last1 = out
        .iter()
        .rposition(|e| {
            e.json()
                .is_some_and(|v| v["type"] == "content_block_delta" && v["index"] == 1)
        })
        .unwrap();
    assert!(last1 < stop1);
    let stop2 = pos(&|v| v["type"] == "content_block_stop" && v["index"] == 2);
    let last2 = out
        .iter()
        .rposition(|e| {
            e.json()
                .is_some_and(|v| v["type"] == "content_block_delta" && v["index"] == 2)
        })
        .unwrap();
    assert!(last2 < stop2);
    assert_eq!(names(&out).last().unwrap(), "message_stop");
}

#[test]
fn truncated_stream_is_flushed_at_end() {
    let p = guide();
    let mut events = anthropic_stream(&["mail bob@example.com"]);
    events.truncate(3); // the upstream died after the delta
    let out = run(&p, AiKind::Messages, events);
    assert_eq!(anthropic_text(&out, 0), "mail <EMAIL>");
    assert_eq!(
        out.last().unwrap().event.as_deref(),
        Some("content_block_delta")
    );
}

fn chat_chunk(choices: Value) -> SseEvent {
    sse::event(
        None,
        &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt", "choices": choices}),
    )
}

fn chat_text(events: &[SseEvent], index: u64) -> String {
    events
        .iter()
        .filter(|e| !sse::is_done(e))
        .filter_map(|e| e.json())
        .flat_map(|v| v["choices"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["index"] == index)
        .filter_map(|c| c["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn openai_chat_choices() {
    let p = guide();
    let events = vec![
        chat_chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        ),
        chat_chunk(
            json!([{"index": 0, "delta": {"content": "Mail bob@exa"}, "finish_reason": null},
                          {"index": 1, "delta": {"content": "SSN 123-4"}, "finish_reason": null}]),
        ),
        chat_chunk(json!([{"index": 0, "delta": {"content": "mple.com"}, "finish_reason": null}])),
        chat_chunk(json!([{"index": 1, "delta": {"content": "5-6789"}, "finish_reason": null}])),
        chat_chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
        chat_chunk(json!([{"index": 1, "delta": {"content": "!"}, "finish_reason": "stop"}])),
        sse::event(
            None,
            &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 1}}),
        ),
        SseEvent {
            event: None,
            data: "[DONE]".into(),
            id: None,
        },
    ];
    let out = run(&p, AiKind::Completions, events);
    assert_eq!(chat_text(&out, 0), "Mail <EMAIL>");
    assert_eq!(chat_text(&out, 1), "SSN <SSN>!");
    assert!(sse::is_done(out.last().unwrap()));
    // The flush for choice 0 comes right before its finish chunk, with the chunk's id.
    let fin = out
        .iter()
        .position(|e| {
            e.json().is_some_and(|v| {
                v["choices"][0]["finish_reason"] == "stop" && v["choices"][0]["index"] == 0
            })
        })
        .unwrap();
    let prev = out[fin - 1].json().unwrap();
    assert_eq!(prev["choices"][0]["delta"]["content"], "<EMAIL>");
    assert_eq!(prev["id"], "chatcmpl-1");
    // Chunks whose whole content was held are dropped, not sent empty.
    assert!(out.iter().filter_map(|e| e.json()).all(|v| {
        v["choices"].as_array().is_none_or(|cs| {
            cs.iter()
                .all(|c| c["delta"]["content"] != "" || c["delta"].get("role").is_some())
        })
    }));
}

#[test]
fn openai_chat_splits_at_every_position() {
    let p = guide();
    let text = "Call 555-123-4567 or bob@example.com today";
    for i in 1..text.len() {
        let events = vec![
            chat_chunk(
                json!([{"index": 0, "delta": {"content": &text[..i]}, "finish_reason": null}]),
            ),
            chat_chunk(
                json!([{"index": 0, "delta": {"content": &text[i..]}, "finish_reason": null}]),
            ),
            chat_chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
            SseEvent {
                event: None,
                data: "[DONE]".into(),
                id: None,
            },
        ];
        let out = run(&p, AiKind::Completions, events);
        assert_eq!(
            chat_text(&out, 0),
            "Call <PHONE> or <EMAIL> today",
            "split at {i}"
        );
    }
}

fn responses_stream(deltas: &[&str]) -> Vec<SseEvent> {
    let full: String = deltas.concat();
    let item = |text: &str, status: &str| {
        json!({"type": "message", "id": "msg_1", "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let mut seq = 0;
    let mut v = Vec::new();
    let mut push = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        v.push(named(name, data));
    };
    push(
        "response.created",
        json!({"response": {"id": "resp_1", "output": []}}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"type": "message", "id": "msg_1", "content": []}}),
    );
    push(
        "response.content_part.added",
        json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}}),
    );
    for d in deltas {
        push(
            "response.output_text.delta",
            json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": d}),
        );
    }
    push(
        "response.output_text.done",
        json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "text": full}),
    );
    push(
        "response.content_part.done",
        json!({"item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": full, "annotations": []}}),
    );
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item(&full, "completed")}),
    );
    push(
        "response.completed",
        json!({"response": {"id": "resp_1", "status": "completed", "output": [item(&full, "completed")], "usage": {"input_tokens": 1, "output_tokens": 2}}}),
    );
    v
}

#[test]
fn responses_stream_is_masked_everywhere() {
    let p = guide();
    let text = "Mail bob@example.com or call 555-123-4567 now";
    let want = "Mail <EMAIL> or call <PHONE> now";
    for i in 1..text.len() {
        let out = run(
            &p,
            AiKind::Responses,
            responses_stream(&[&text[..i], &text[i..]]),
        );
        let deltas: String = out
            .iter()
            .filter(|e| e.event.as_deref() == Some("response.output_text.delta"))
            .map(|e| e.json().unwrap()["delta"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(deltas, want, "split at {i}");
        let raw: String = out.iter().map(|e| e.data.clone()).collect();
        assert!(!raw.contains("bob@") && !raw.contains("555-123"), "{raw}");
        let n = names(&out);
        assert_eq!(n.last().unwrap(), "response.completed");
        let done = n
            .iter()
            .position(|x| x == "response.output_text.done")
            .unwrap();
        assert!(
            n[..done]
                .iter()
                .filter(|x| *x == "response.output_text.delta")
                .count()
                >= 1
        );
        assert!(
            n[done..].iter().all(|x| x != "response.output_text.delta"),
            "{n:?}"
        );
        let completed = out.last().unwrap().json().unwrap();
        assert_eq!(
            completed["response"]["output"][0]["content"][0]["text"],
            want
        );
        assert_eq!(completed["response"]["usage"]["output_tokens"], 2);
        let done_ev = out[done].json().unwrap();
        assert_eq!(done_ev["text"], want);
        // A flushed delta carries the item id.
        for e in out
            .iter()
            .filter(|e| e.event.as_deref() == Some("response.output_text.delta"))
        {
            assert_eq!(e.json().unwrap()["item_id"], "msg_1");
        }
    }
}

#[test]
fn request_masking() {
    let p =
        policy(json!({"outputFilter": {"maskPatterns": ["email", "ssn"], "maskRequest": true}}));
    let c = ctx(AiKind::Messages);
    assert!(matches!(
        p.on_request_headers(&c, &vec![]),
        HeadersAction::NeedBody(_)
    ));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "my ssn is 123-45-6789"}], "metadata": {"user_id": "a@b.io"}});
    let BodyAction::Replace(out) = p.on_request_body(&c, &vec![], body.to_string().into_bytes())
    else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["messages"][0]["content"], "my ssn is <SSN>");
    assert_eq!(v["metadata"]["user_id"], "a@b.io");
    let clean = json!({"messages": [{"role": "user", "content": "hi"}]})
        .to_string()
        .into_bytes();
    assert!(matches!(
        p.on_request_body(&c, &vec![], clean),
        BodyAction::Continue
    ));
}

#[test]
fn prompt_guard_response_mask_and_reject() {
    let p = policy(json!({"promptGuard": {"response": [
        {"regex": {"action": "mask", "builtins": ["creditCard"]}},
        {"regex": {"action": "reject", "rules": [{"pattern": "TOP SECRET"}]}, "rejection": {"status": 451, "body": "blocked"}}]}}));
    let c = ctx(AiKind::Messages);
    let body =
        json!({"content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]}).to_string();
    let BodyAction::Replace(out) = p.on_response_body(&c, 200, body.into_bytes()) else {
        panic!()
    };
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("card <CREDIT_CARD>"));
    let body = json!({"content": [{"type": "text", "text": "this is TOP SECRET"}]}).to_string();
    let BodyAction::Respond(r) = p.on_response_body(&c, 200, body.into_bytes()) else {
        panic!()
    };
    assert_eq!((r.status, r.body.as_deref()), (451, Some(&b"blocked"[..])));
    // In a stream, where sent text cannot be recalled, reject rules mask.
    let out = run(
        &p,
        AiKind::Messages,
        anthropic_stream(&["this is TOP SEC", "RET ok"]),
    );
    assert_eq!(anthropic_text(&out, 0), "this is <MASKED> ok");
}

fn thinking_and_tool_json_stream() -> Vec<SseEvent> {
    let d = |i: u64, delta: Value| {
        named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": delta}),
        )
    };
    vec![
        named(
            "message_start",
            json!({"type": "message_start", "message": {"id": "m"}}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}}),
        ),
        d(
            0,
            json!({"type": "thinking_delta", "thinking": "user bob@exa"}),
        ),
        d(0, json!({"type": "thinking_delta", "thinking": "mple.com"})),
        d(0, json!({"type": "signature_delta", "signature": "sig"})),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "Write", "input": {}}}),
        ),
        d(
            1,
            json!({"type": "input_json_delta", "partial_json": "{\"content\": \"SSN 123-4"}),
        ),
        d(
            1,
            json!({"type": "input_json_delta", "partial_json": "5-6789, mail a\\u0040b.io"}),
        ),
        d(
            1,
            json!({"type": "input_json_delta", "partial_json": "\"}"}),
        ),
        named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        named("message_stop", json!({"type": "message_stop"})),
    ]
}

fn concat(out: &[SseEvent], index: u64, ty: &str, field: &str) -> String {
    out.iter()
        .filter_map(|e| e.json())
        .filter(|v| {
            v["type"] == "content_block_delta" && v["index"] == index && v["delta"]["type"] == ty
        })
        .map(|v| v["delta"][field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn thinking_and_streamed_tool_json_are_masked() {
    let p = guide();
    let out = run(&p, AiKind::Messages, thinking_and_tool_json_stream());
    assert_eq!(
        concat(&out, 0, "thinking_delta", "thinking"),
        "user <EMAIL>"
    );
    assert_eq!(concat(&out, 0, "signature_delta", "signature"), "sig");
    let json_text = concat(&out, 1, "input_json_delta", "partial_json");
    let v: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(v, json!({"content": "SSN <SSN>, mail <EMAIL>"}));
    assert_eq!(names(&out).last().unwrap(), "message_stop");
    // Flushes come before their block's stop.
    let stop1 = out
        .iter()
        .position(|e| {
            e.json()
                .is_some_and(|v| v["type"] == "content_block_stop" && v["index"] == 1)
        })
        .unwrap();
    let last1 = out
        .iter()
        .rposition(|e| {
            e.json()
                .is_some_and(|v| v["type"] == "content_block_delta" && v["index"] == 1)
        })
        .unwrap();
    assert!(last1 < stop1);
}

#[test]
fn chat_tool_call_arguments_and_refusal_are_masked() {
    let p = guide();
    let ch = |delta: Value, finish: Value| {
        sse::event(
            None,
            &json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let events = vec![
        ch(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call", "type": "function",
            "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        ch(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"to\":\"bob@ex"}}]}),
            Value::Null,
        ),
        ch(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "ample.com\"}"}}]}),
            Value::Null,
        ),
        ch(json!({"refusal": "no, 555-12"}), Value::Null),
        ch(json!({"refusal": "3-4567"}), Value::Null),
        ch(json!({}), json!("tool_calls")),
        SseEvent {
            event: None,
            data: "[DONE]".into(),
            id: None,
        },
    ];
    let out = run(&p, AiKind::Completions, events);
    let args: String = out
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|v| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"to": "<EMAIL>"})
    );
    let refusal: String = out
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|v| {
            v["choices"][0]["delta"]["refusal"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(refusal, "no, <PHONE>");
    assert_eq!(out.last().unwrap().data, "[DONE]");
}

#[test]
fn responses_reasoning_and_arguments_are_masked() {
    let p = guide();
    let e = |name: &str, mut v: Value| {
        v["type"] = json!(name);
        named(name, v)
    };
    let events = vec![
        e(
            "response.reasoning_summary_text.delta",
            json!({"item_id": "rs", "output_index": 0, "summary_index": 0, "delta": "SSN 123-4"}),
        ),
        e(
            "response.reasoning_summary_text.delta",
            json!({"item_id": "rs", "output_index": 0, "summary_index": 0, "delta": "5-6789"}),
        ),
        e(
            "response.reasoning_summary_text.done",
            json!({"item_id": "rs", "output_index": 0, "summary_index": 0, "text": "SSN 123-45-6789"}),
        ),
        e(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc", "output_index": 1, "delta": "{\"a\":\"x@y"}),
        ),
        e(
            "response.function_call_arguments.delta",
            json!({"item_id": "fc", "output_index": 1, "delta": ".io\"}"}),
        ),
        e(
            "response.function_call_arguments.done",
            json!({"item_id": "fc", "output_index": 1, "arguments": "{\"a\":\"x@y.io\"}"}),
        ),
        e(
            "response.refusal.delta",
            json!({"item_id": "m", "output_index": 2, "content_index": 0, "delta": "call 555-123-"}),
        ),
        e(
            "response.refusal.done",
            json!({"item_id": "m", "output_index": 2, "content_index": 0, "refusal": "call 555-123-4567"}),
        ),
        e("response.completed", json!({"response": {"output": []}})),
    ];
    let out = run(&p, AiKind::Responses, events);
    let cat = |ty: &str| -> String {
        out.iter()
            .filter_map(|e| e.json())
            .filter(|v| v["type"] == ty)
            .map(|v| v["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(cat("response.reasoning_summary_text.delta"), "SSN <SSN>");
    assert_eq!(
        serde_json::from_str::<Value>(&cat("response.function_call_arguments.delta")).unwrap(),
        json!({"a": "<EMAIL>"})
    );
    // The refusal delta was cut before its end; the flushed tail precedes `.done`.
    assert_eq!(cat("response.refusal.delta"), "call 555-123-");
    let done: Vec<Value> = out
        .iter()
        .filter_map(|e| e.json())
        .filter(|v| v["type"].as_str().unwrap().ends_with(".done"))
        .collect();
    assert_eq!(done[0]["text"], "SSN <SSN>");
    assert_eq!(done[1]["arguments"], "{\"a\":\"<EMAIL>\"}");
    assert_eq!(done[2]["refusal"], "call <PHONE>");
    assert_eq!(names(&out).last().unwrap(), "response.completed");
}

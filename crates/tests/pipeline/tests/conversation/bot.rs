//! The bot's replies through the whole pipeline (real PostgreSQL and
//! RabbitMQ), with fakes for the model and Evolution API that record exactly
//! what they received.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    BotOptions, Pipeline, PipelineOptions, Seed, SeedOptions, TestEnv, count, customer_message,
    eventually, meta_accepts, post_ok, recent, reply_status, seed, text_message,
    wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers},
};
use serde_json::{Value, json};
use std::time::Duration;

const PHONE: &str = "5511999999999";
const ANSWER: &str = "Olá! Podemos agendar uma avaliação para amanhã?";
const API_KEY: &str = "evo-instance-key";
const WAIT: Duration = Duration::from_secs(30);

struct Fakes {
    meta: MockServer,
    llm: MockServer,
    evolution: MockServer,
}

fn completion(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}
    }))
}

fn sent(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "key": {"remoteJid": format!("{PHONE}@s.whatsapp.net"), "fromMe": true, "id": id},
        "message": {"conversation": ANSWER}, "status": "PENDING"
    }))
}

/// Every POST to `server` gets `answer`.
async fn respond(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(matchers::method("POST"))
        .respond_with(answer)
        .mount(server)
        .await;
}

async fn fakes() -> Fakes {
    let f = Fakes {
        meta: MockServer::start().await,
        llm: MockServer::start().await,
        evolution: MockServer::start().await,
    };
    meta_accepts(&f.meta).await;
    f
}

async fn start(env: &TestEnv, f: &Fakes, replicas: usize) -> (Seed, Pipeline) {
    let s = seed(env, &SeedOptions::default()).await;
    let mut conn = env.conn().await;
    storage::directions::set_instance_bot(
        &mut conn,
        &env.keys(),
        &s.instance,
        Some(API_KEY),
        None,
        None,
    )
    .await
    .unwrap();
    let mut opts = PipelineOptions::new(&f.meta.uri());
    opts.replicas = replicas;
    opts.bot = Some(BotOptions::new(
        &format!("{}/v1", f.llm.uri()),
        &f.evolution.uri(),
    ));
    (s, Pipeline::start(env, &opts).await)
}

fn operator_message(instance: &str, id: &str, text: &str, ts: i64) -> Value {
    json!({"event": "messages.upsert", "instance": instance, "data": {
        "key": {"remoteJid": format!("{PHONE}@s.whatsapp.net"), "fromMe": true, "id": id},
        "message": {"conversation": text}, "messageType": "conversation", "messageTimestamp": ts
    }})
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    requests(server)
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

/// Long enough after the last expected request for a stray second one to show.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_three_messages_gets_one_answer_even_from_two_replicas() {
    let env = TestEnv::new().await;
    let f = fakes().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/chat/completions"))
        .respond_with(completion(ANSWER))
        .mount(&f.llm)
        .await;
    respond(&f.evolution, sent("3EB0BOTREPLY01")).await;
    let (s, p) = start(&env, &f, 2).await;
    let t = recent(3);
    for (i, text) in [
        "Oi",
        "Quanto custa a limpeza de pele?",
        "Vocês abrem sábado?",
    ]
    .iter()
    .enumerate()
    {
        post_ok(
            &p,
            &s,
            &customer_message(
                &s.instance,
                &format!("M{i}"),
                PHONE,
                text,
                None,
                t + i as i64,
            ),
        )
        .await;
    }
    eventually("the reply is sent", WAIT, || async {
        (!requests(&f.evolution).await.is_empty()).then_some(())
    })
    .await;
    settle().await;

    // Exactly one model call, with the three messages in order after the prompt.
    let llm_calls = bodies(&f.llm).await;
    assert_eq!(llm_calls.len(), 1, "{llm_calls:?}");
    let call = &llm_calls[0];
    assert_eq!(call["model"], "gpt-4o-mini");
    let messages = call["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert_eq!(
        system,
        chatbot_service::GENERIC_PROMPT.replace("{business}", "Cosmetology")
    );
    assert_eq!(
        messages[1..].to_vec(),
        vec![
            json!({"role": "user", "content": "Oi"}),
            json!({"role": "user", "content": "Quanto custa a limpeza de pele?"}),
            json!({"role": "user", "content": "Vocês abrem sábado?"}),
        ]
    );
    let auth = requests(&f.llm).await[0]
        .headers
        .get("authorization")
        .map(|h| h.to_str().unwrap().to_owned());
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));

    // Exactly one sendText, v2 body, the instance's key.
    let sends = requests(&f.evolution).await;
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].url.path(),
        format!("/message/sendText/{}", s.instance)
    );
    assert_eq!(
        sends[0].headers.get("apikey").unwrap().to_str().unwrap(),
        API_KEY
    );
    let body: Value = serde_json::from_slice(&sends[0].body).unwrap();
    assert_eq!(body, json!({"number": PHONE, "text": ANSWER}));

    // Stored as the dialog's outgoing bot message, with its response time:
    // from the first unanswered customer message to the reply.
    let stored = count(&env, &format!(
        "SELECT count(*) AS n FROM dialog_messages WHERE author = 'bot' AND from_me AND message_id = '3EB0BOTREPLY01' AND text = '{ANSWER}'"
    )).await;
    assert_eq!(stored, 1);
    let consistent = count(&env,
        "SELECT count(*) AS n FROM dialog_messages b, \
           (SELECT min(sent_at) AS first FROM dialog_messages WHERE author = 'customer') c \
         WHERE b.author = 'bot' AND abs(b.response_ms - extract(epoch FROM b.sent_at - c.first) * 1000) < 1 \
           AND b.response_ms BETWEEN 300 AND 15000").await;
    assert_eq!(
        consistent, 1,
        "response_ms = bot sent_at - first customer message"
    );
    assert_eq!(
        count(
            &env,
            "SELECT outgoing_count::bigint AS n FROM dialog_analysis"
        )
        .await,
        1
    );
    assert_eq!(reply_status(&env).await.unwrap().0, "sent");
    assert_eq!(
        count(&env, "SELECT prompt_tokens::bigint AS n FROM bot_replies").await,
        50
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_who_wrote_from_the_phone_a_minute_ago_keeps_the_bot_quiet() {
    let env = TestEnv::new().await;
    let f = fakes().await;
    respond(&f.llm, completion(ANSWER)).await;
    respond(&f.evolution, sent("X")).await;
    let (s, p) = start(&env, &f, 1).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "C1", PHONE, "Oi", None, recent(120)),
    )
    .await;
    post_ok(
        &p,
        &s,
        &operator_message(
            &s.instance,
            "OP1",
            "Oi! Aqui é a Ana, da clínica.",
            recent(60),
        ),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "C2", PHONE, "Quanto custa?", None, recent(1)),
    )
    .await;
    eventually("the bot decides", WAIT, || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM bot_replies WHERE status <> 'pending'",
        )
        .await
            >= 1)
            .then_some(())
    })
    .await;
    settle().await;
    assert!(requests(&f.llm).await.is_empty(), "no model call");
    assert!(requests(&f.evolution).await.is_empty(), "no reply");
    assert_eq!(
        reply_status(&env).await,
        Some(("skipped".into(), Some("operator_takeover".into())))
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM dialog_messages WHERE author = 'bot'"
        )
        .await,
        0
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_failing_twice_then_answering_gives_one_reply() {
    let env = TestEnv::new().await;
    let f = fakes().await;
    Mock::given(matchers::method("POST"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "overloaded"}})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&f.llm)
        .await;
    respond(&f.llm, completion(ANSWER)).await;
    respond(&f.evolution, sent("R1")).await;
    let (s, p) = start(&env, &f, 1).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "Oi", None, recent(1)),
    )
    .await;
    eventually("the reply is sent", WAIT, || async {
        (!requests(&f.evolution).await.is_empty()).then_some(())
    })
    .await;
    settle().await;
    assert_eq!(requests(&f.llm).await.len(), 3);
    assert_eq!(requests(&f.evolution).await.len(), 1);
    assert_eq!(reply_status(&env).await.unwrap().0, "sent");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_model_down_there_is_no_reply_but_qualification_goes_on() {
    let env = TestEnv::new().await;
    let f = fakes().await;
    respond(
        &f.llm,
        ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "down"}})),
    )
    .await;
    respond(&f.evolution, sent("R1")).await;
    let (s, p) = start(&env, &f, 1).await;
    post_ok(
        &p,
        &s,
        &customer_message(
            &s.instance,
            "M1",
            PHONE,
            "Oi",
            Some("ARAkLkA8rmlFeiCktEJQ"),
            recent(2),
        ),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "Quanto custa?", None, recent(1)),
    )
    .await;
    // Qualification got the dialog right after the buffer delay: the Lead
    // was claimed within it, whatever the bot was doing.
    eventually("the Lead reaches Meta", WAIT, || async {
        (!requests(&f.meta).await.is_empty()).then_some(())
    })
    .await;
    let prompt = count(&env,
        "SELECT count(*) AS n FROM capi_deliveries cd, dialog_analysis d \
         WHERE cd.dialog_id = d.id AND cd.claimed_at - (SELECT max(received_at) FROM dialog_messages) < interval '2.5 seconds'").await;
    assert_eq!(
        prompt, 1,
        "the level was claimed within the buffer delay (300 ms) plus slack"
    );
    eventually("the bot gives up", WAIT, || async {
        reply_status(&env).await.filter(|r| r.0 == "failed")
    })
    .await;
    settle().await;
    assert_eq!(
        requests(&f.llm).await.len(),
        3,
        "the first try and two retries"
    );
    assert!(requests(&f.evolution).await.is_empty(), "no reply");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evolution_rejections_are_not_retried_and_its_outages_are() {
    let env = TestEnv::new().await;
    let f = fakes().await;
    respond(&f.llm, completion(ANSWER)).await;
    respond(&f.evolution, ResponseTemplate::new(400).set_body_json(json!({
            "status": 400, "error": "Bad Request",
            "response": {"message": [{"jid": "5511999999999@s.whatsapp.net", "exists": false, "number": PHONE}]}
        }))).await;
    let (s, p) = start(&env, &f, 1).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "Oi", None, recent(1)),
    )
    .await;
    eventually("the reply fails", WAIT, || async {
        reply_status(&env).await.filter(|r| r.0 == "failed")
    })
    .await;
    settle().await;
    assert_eq!(
        requests(&f.evolution).await.len(),
        1,
        "a 4xx is not retried"
    );
    let reason = reply_status(&env).await.unwrap().1.unwrap();
    assert!(
        reason.contains("400") && reason.contains("exists"),
        "{reason}"
    );

    // An outage (5xx) is retried, with the same text and no second model call.
    f.evolution.reset().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&f.evolution)
        .await;
    respond(&f.evolution, sent("R2")).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "Alô?", None, recent(0)),
    )
    .await;
    eventually("the second reply is sent", WAIT, || async {
        reply_status(&env).await.filter(|r| r.0 == "sent")
    })
    .await;
    let sends = bodies(&f.evolution).await;
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0], sends[1], "the retry sends the same text");
    assert_eq!(requests(&f.llm).await.len(), 2, "one model call per burst");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queued_reply_due_leaves_an_answered_burst_alone_and_answers_one_nobody_did() {
    use bus::messages::{BusMessage, ReplyDue, encode};
    use storage::conversations::{self, Queued, Recorded};
    let env = TestEnv::new().await;
    let f = fakes().await;
    respond(&f.llm, completion(ANSWER)).await;
    respond(&f.evolution, sent("R1")).await;
    let (s, p) = start(&env, &f, 1).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "Oi", None, recent(2)),
    )
    .await;
    eventually("the reply is sent", WAIT, || async {
        (!requests(&f.evolution).await.is_empty()).then_some(())
    })
    .await;
    let dialog = pipeline_tests::dialog_ids(&env).await[0];

    // The durable copy of the answered burst (and a redelivery of it) changes nothing.
    let bus = env.bus();
    for _ in 0..2 {
        bus.publish_message(&ReplyDue {
            dialog_id: dialog,
            seq: 1,
        })
        .await
        .expect("publish");
    }
    settle().await;
    assert_eq!(requests(&f.llm).await.len(), 1);
    assert_eq!(requests(&f.evolution).await.len(), 1);

    // A burst flushed by a process that died before it answered: only the
    // reply.due that the flush queued is left, and it answers.
    let mut conn = env.conn().await;
    let recorded = conversations::record_message(
        &mut conn,
        &text_message(&s.instance, "M2", Some(PHONE), None, "Tem horário amanhã?"),
        |_, _| None,
    )
    .await
    .expect("stored");
    assert_eq!(
        recorded,
        Recorded::Stored {
            dialog_id: dialog,
            buffer_seq: Some(2)
        }
    );
    let due = ReplyDue {
        dialog_id: dialog,
        seq: 2,
    };
    let queued = Queued {
        routing_key: ReplyDue::ROUTING_KEY,
        payload: encode(&due),
        delay_ms: 0,
    };
    assert!(
        conversations::flush_buffer(&mut conn, dialog, 2, &[queued])
            .await
            .expect("flush")
    );
    eventually("the queued reply.due answers", WAIT, || async {
        (requests(&f.evolution).await.len() == 2).then_some(())
    })
    .await;
    settle().await;
    let calls = bodies(&f.llm).await;
    assert_eq!(calls.len(), 2);
    let last = calls[1]["messages"].as_array().unwrap();
    assert_eq!(
        last.last().unwrap(),
        &json!({"role": "user", "content": "Tem horário amanhã?"})
    );
    assert_eq!(requests(&f.evolution).await.len(), 2);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM bot_replies WHERE status = 'sent' AND attempts = 1"
        )
        .await,
        2
    );
    p.stop().await;
}

//! Real libp2p over TCP on 127.0.0.1 between three cluster members (and a
//! stranger): delivery with the authenticated sender, strangers refused,
//! oversize messages dropped, retransmission to a member that comes up late,
//! and the round trip and clock offset learned from the answers.

use p2p::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{timeout, Instant};

const MAX: u64 = 64 * 1024;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    keys: Vec<Keypair>,
    members: Vec<Member>,
}

fn cluster(n: usize) -> Cluster {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let members = keys
        .iter()
        .map(|k| Member {
            peer_id: k.public().to_peer_id(),
            address: format!("/ip4/127.0.0.1/tcp/{}", free_port())
                .parse()
                .unwrap(),
        })
        .collect();
    Cluster { keys, members }
}

async fn start_member(c: &Cluster, i: usize) -> (Handle, UnboundedReceiver<Incoming>) {
    start_limited(c, i, InboundBudget::UNLIMITED, None, None).await
}

async fn start_limited(
    c: &Cluster,
    i: usize,
    inbound_budget: InboundBudget,
    on_refused: Option<RefusedHook>,
    on_ack: Option<AckHook>,
) -> (Handle, UnboundedReceiver<Incoming>) {
    start(Config {
        keypair: c.keys[i].clone(),
        members: c.members.clone(),
        listen: c.members[i].address.clone(),
        max_message_bytes: MAX,
        on_sent: None,
        inbound_budget,
        on_refused,
        on_ack,
    })
    .await
    .unwrap()
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn next(rx: &mut UnboundedReceiver<Incoming>) -> Option<Incoming> {
    timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn members_exchange_messages_and_strangers_are_refused() {
    let c = cluster(3);
    let (h0, mut rx0) = start_member(&c, 0).await;
    let (_h1, mut rx1) = start_member(&c, 1).await;
    let (h2, mut rx2) = start_member(&c, 2).await;

    let env = Envelope::new(42, 1, Topic::PartialSignatures, vec![1, 2, 3]);
    h0.broadcast(env.clone(), deadline(10)).unwrap();
    for rx in [&mut rx1, &mut rx2] {
        let got = next(rx).await.expect("delivered");
        assert_eq!(
            got,
            Incoming {
                from: 0,
                envelope: env.clone()
            }
        );
    }
    h2.send(
        0,
        Envelope::new(43, 0, Topic::Consensus, vec![9]),
        deadline(10),
    )
    .unwrap();
    assert_eq!(next(&mut rx0).await.unwrap().from, 2);

    // A stranger that knows member 1's address cannot get a message through.
    let stranger_key = Keypair::generate_ed25519();
    let mut with_stranger = c.members.clone();
    with_stranger.push(Member {
        peer_id: stranger_key.public().to_peer_id(),
        address: format!("/ip4/127.0.0.1/tcp/{}", free_port())
            .parse()
            .unwrap(),
    });
    let (stranger, _) = start(Config {
        keypair: stranger_key,
        members: with_stranger.clone(),
        listen: with_stranger[3].address.clone(),
        max_message_bytes: MAX,
        on_sent: None,
        inbound_budget: InboundBudget::UNLIMITED,
        on_refused: None,
        on_ack: None,
    })
    .await
    .unwrap();
    stranger
        .send(
            1,
            Envelope::new(44, 0, Topic::Consensus, vec![6, 6, 6]),
            deadline(3),
        )
        .unwrap();
    assert!(
        timeout(Duration::from_secs(3), rx1.recv()).await.is_err(),
        "a stranger's message was delivered"
    );

    // Oversize is dropped; the next normal message still arrives.
    h0.send(
        1,
        Envelope::new(45, 0, Topic::Consensus, vec![0; MAX as usize]),
        deadline(2),
    )
    .unwrap();
    h0.send(
        1,
        Envelope::new(46, 0, Topic::Consensus, vec![7]),
        deadline(10),
    )
    .unwrap();
    let got = next(&mut rx1).await.unwrap();
    assert_eq!(
        got.envelope.slot, 46,
        "the oversize message must not be delivered"
    );
    assert!(h0.connected().await.unwrap().contains(&1));
}

#[tokio::test]
async fn a_member_that_comes_up_late_still_gets_the_message() {
    let c = cluster(2);
    let (h0, _rx0) = start_member(&c, 0).await;
    h0.send(
        1,
        Envelope::new(7, 0, Topic::PartialSignatures, vec![5]),
        deadline(20),
    )
    .unwrap();
    // An already expired message is never delivered.
    h0.send(
        1,
        Envelope::new(6, 0, Topic::PartialSignatures, vec![4]),
        Instant::now(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_h1, mut rx1) = start_member(&c, 1).await;
    let got = next(&mut rx1)
        .await
        .expect("retransmitted after the peer came up");
    assert_eq!((got.from, got.envelope.slot), (0, 7));
    assert!(
        timeout(Duration::from_secs(2), rx1.recv()).await.is_err(),
        "the expired message arrived"
    );
}

/// A member flooding past its budget gets only the budget through; each
/// message refused is reported with the sender's index; past a burst's worth
/// of refusals it is cut off (and not redialled); the other member's
/// messages still arrive.
#[tokio::test]
async fn a_flooding_member_is_held_to_its_budget_and_named() {
    let c = cluster(3);
    let refused = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook: RefusedHook = {
        let refused = refused.clone();
        std::sync::Arc::new(move |peer, reason| refused.lock().unwrap().push((peer, reason)))
    };
    let budget = InboundBudget {
        messages_per_second: 0.01,
        message_burst: 5.0,
        bytes_per_second: 1.0,
        byte_burst: 1e6,
    };
    let (h0, mut rx0) = start_limited(&c, 0, budget, Some(hook), None).await;
    let (h1, _rx1) = start_member(&c, 1).await;
    let (h2, _rx2) = start_member(&c, 2).await;
    for slot in 0..20 {
        h1.send(
            0,
            Envelope::new(slot, 0, Topic::Consensus, vec![1; 100]),
            deadline(10),
        )
        .unwrap();
    }
    let mut from_1 = 0;
    while let Ok(Some(m)) = timeout(Duration::from_secs(3), rx0.recv()).await {
        assert_eq!(m.from, 1);
        from_1 += 1;
    }
    assert_eq!(from_1, 5, "only the burst gets through");
    // Five refusals are tolerated (a burst's worth); the sixth cuts it off.
    let refused = refused.lock().unwrap().clone();
    assert_eq!(
        refused,
        [
            vec![(1, "rate_limited"); 6],
            vec![(1, "disconnected_over_budget")]
        ]
        .concat(),
    );
    assert!(
        !h0.connected().await.unwrap().contains(&1),
        "still connected"
    );
    h2.send(
        0,
        Envelope::new(99, 0, Topic::Consensus, vec![2]),
        deadline(10),
    )
    .unwrap();
    assert_eq!(
        next(&mut rx0).await.map(|m| m.from),
        Some(2),
        "another member is not held back"
    );
}

#[tokio::test]
async fn answers_carry_the_round_trip_and_the_clock_offset() {
    let c = cluster(2);
    let answers: Arc<Mutex<Vec<(usize, Duration, i64)>>> = Arc::default();
    let hook: AckHook = {
        let answers = answers.clone();
        Arc::new(move |peer, rtt, offset| answers.lock().unwrap().push((peer, rtt, offset)))
    };
    let (h0, _rx0) = start_limited(&c, 0, InboundBudget::UNLIMITED, None, Some(hook)).await;
    let (_h1, mut rx1) = start_member(&c, 1).await;
    h0.send(
        1,
        Envelope::new(1, 0, Topic::Consensus, vec![7; 100]),
        deadline(8),
    )
    .unwrap();
    assert!(next(&mut rx1).await.is_some());
    let until = Instant::now() + Duration::from_secs(5);
    while answers.lock().unwrap().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answers = answers.lock().unwrap().clone();
    // One answer, from member 1; one machine, one clock: the offset is the
    // rounding of the estimate (a few ms at most).
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (peer, rtt, offset) = answers[0];
    assert_eq!(peer, 1);
    assert!(
        rtt > Duration::ZERO && rtt < Duration::from_secs(5),
        "{rtt:?}"
    );
    assert!(offset.abs() <= 50, "offset {offset} ms on one machine");
}

use crate::helpers::*;

#[tokio::test]
async fn a_restart_keeps_users_and_revocations() {
    let server = TestServer::start().await;
    let ended = server.signup("wendy").await;
    let live = Session::from_payload(&server.login("wendy", PASSWORD).await, "login");
    let rotated_from = Session::from_payload(&server.login("wendy", PASSWORD).await, "login");
    let rotated =
        Session::from_payload(&server.refresh(&rotated_from.refresh).await, "refreshToken");
    assert_eq!(server.logout(&ended.refresh).await["data"]["logout"], true);

    // SIGKILL: nothing gets a chance to flush.
    let server = server.restart().await;

    assert!(server.login("wendy", PASSWORD).await["data"]["login"].is_object());
    assert_eq!(reason(&server.me(&ended.access).await), "revoked");
    assert_eq!(reason(&server.refresh(&ended.refresh).await), "revoked");
    assert!(server.me(&live.access).await["data"]["me"].is_object());
    assert!(server.me(&rotated.access).await["data"]["me"].is_object());
    // The rotated-away token is still known as used: replaying it ends its session.
    assert_eq!(
        reason(&server.refresh(&rotated_from.refresh).await),
        "revoked"
    );
    assert_eq!(reason(&server.me(&rotated.access).await), "revoked");
}

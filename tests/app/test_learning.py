"""Learning paths, progress events (idempotent) and the calendar feed."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from icalendar import Calendar

from tests.conftest import AppServer, Databases


async def video_ids(client: httpx.AsyncClient, query: str, n: int) -> list[str]:
    found = (await client.get("/v1/videos/search", params={"q": query, "limit": n})).json()["videos"]
    return [v["id"] for v in found]


async def test_progress_replays_change_nothing(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        [video] = await video_ids(client, "roblox leaderboard", 1)
        click = {"event_id": str(uuid.uuid4()), "video_id": video, "kind": "click"}
        watch = {"event_id": str(uuid.uuid4()), "video_id": video, "kind": "progress", "position_s": 90}
        first = [await client.post("/v1/progress/events", json=e) for e in (click, watch)]
        replays = [await client.post("/v1/progress/events", json=e) for e in (click, watch, click)]
        behind = await client.post("/v1/progress/events", json={**watch, "event_id": str(uuid.uuid4()),
                                                                 "position_s": 30})
        summary = (await client.get("/v1/progress")).json()
    assert [r.status_code for r in first] == [201, 201]
    assert [r.status_code for r in replays] == [200, 200, 200]
    assert all(r.json()["replayed"] for r in replays)
    assert replays[-1].json()["clicks"] == 1 and replays[-1].json()["position_s"] == 90
    assert behind.json()["position_s"] == 90  # watch position never moves backwards
    assert summary["videos"][0]["clicks"] == 1


async def test_learning_path_create_reorder_and_progress(app_server: AppServer, make_user):
    user, other = await make_user(), await make_user()
    async with app_server.client(user.key) as client:
        ids = await video_ids(client, "unity c#", 4)
        created = await client.post("/v1/paths", json={"title": "Unity basics", "video_ids": ids})
        assert created.status_code == 201, created.text
        path = created.json()
        assert [i["id"] for i in path["items"]] == ids and path["progress_percent"] == 0
        done = {"event_id": str(uuid.uuid4()), "video_id": ids[0], "kind": "complete"}
        assert (await client.post("/v1/progress/events", json=done)).status_code == 201
        reordered = await client.put(f"/v1/paths/{path['id']}/order", json={"video_ids": ids[::-1]})
        assert reordered.status_code == 200, reordered.text
        listed = (await client.get("/v1/paths")).json()
        wrong_set = await client.put(f"/v1/paths/{path['id']}/order", json={"video_ids": ids[:2]})
    assert [i["id"] for i in reordered.json()["items"]] == ids[::-1]
    assert reordered.json()["progress_percent"] == 25.0
    assert listed[0]["id"] == path["id"] and listed[0]["videos"] == 4
    assert wrong_set.status_code == 422 and "current videos" in wrong_set.text
    async with app_server.client(other.key) as client:
        assert (await client.get(f"/v1/paths/{path['id']}")).status_code == 404
        steal = await client.put(f"/v1/paths/{path['id']}/order", json={"video_ids": ids})
        assert steal.status_code == 404
        assert (await client.get("/v1/paths")).json() == []


async def test_calendar_feed_is_valid_icalendar_with_the_sessions(app_server: AppServer, make_user):
    user = await make_user()
    start = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    async with app_server.client(user.key) as client:
        ids = await video_ids(client, "python classes", 2)
        path = (await client.post("/v1/paths", json={"title": "Python OOP", "video_ids": ids})).json()
        for body in ({"video_id": ids[0], "starts_at": start.isoformat(), "duration_min": 30},
                     {"path_id": path["id"], "starts_at": (start + timedelta(days=1)).isoformat(),
                      "duration_min": 60, "title": "Python evening"}):
            response = await client.post("/v1/calendar/sessions", json=body)
            assert response.status_code == 201, response.text
        url = (await client.post("/v1/calendar/feed")).json()["url"]
    feed = httpx.get(url)  # calendar clients fetch it without a key
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    events = list(Calendar.from_ical(feed.content).walk("VEVENT"))
    assert len(events) == 2
    assert events[0].decoded("dtstart") == start
    assert events[0].decoded("dtend") == start + timedelta(minutes=30)
    assert str(events[1]["summary"]) == "Python evening"
    async with app_server.client(user.key) as client:
        new_url = (await client.post("/v1/calendar/feed")).json()["url"]
    assert httpx.get(url).status_code == 404, "an old feed URL keeps working after a new one was made"
    assert httpx.get(new_url).status_code == 200


async def test_the_feed_survives_sessions_stored_before_dates_and_titles_were_checked(
        app_server: AppServer, databases: Databases, make_user):
    """A session at 9999-12-31 20:00 for 480 minutes ends past the last representable time; a title with
    control characters is not valid iCalendar text. Neither may break the user's feed."""
    user = await make_user()
    async with app_server.client(user.key) as client:
        [video] = await video_ids(client, "python classes", 1)
        url = (await client.post("/v1/calendar/feed")).json()["url"]
    databases.primary.psql(
        "INSERT INTO calendar_sessions (user_id, video_id, title, starts_at, duration_min) VALUES "
        f"('{user.id}', '{video}', 'the far future', '9999-12-31 20:00+00', 480), "
        f"('{user.id}', '{video}', E'Bell\\x07 and \\x1b[31mred', '2026-12-03 18:00+00', 30)")
    feed = httpx.get(url)
    assert feed.status_code == 200, feed.text
    [event] = Calendar.from_ical(feed.content).walk("VEVENT")
    assert str(event["summary"]) == "Bell  and  [31mred"
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", feed.content), "control characters in the feed"


async def test_search_and_video_detail(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        found = (await client.get("/v1/videos/search", params={"q": "blender donut", "limit": 5})).json()
        detail = await client.get(f"/v1/videos/{found['videos'][0]['id']}")
        missing = await client.get("/v1/videos/doesNotExist")
    assert len(found["videos"]) == 5
    assert "donut" in found["videos"][0]["title"].lower()
    assert detail.status_code == 200 and detail.json()["description"]
    assert missing.status_code == 404 and missing.json()["detail"] == "no such video"

"""Deterministic synthetic dialogue-summarization corpus in the style of SAMSum.

The offline demo pretrains a tiny language model on these messenger chats and LoRA-fine-tunes it
to write their one-sentence summaries; every summary is built from the chat's own facts (names,
places, days, times, amounts), so a model can learn to copy them and ROUGE can reward it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from lorasweep.builtin import phrases as p

MAX_TURNS = 10
MIN_TURNS = 4
# Below MIN_TURNS lines or this many words the closing small talk is always added.
MIN_WORDS = 25

SPLIT_SEEDS: dict[str, int] = {"train": 1, "validation": 2, "test": 3}
DEFAULT_SIZES: dict[str, int] = {"train": 4000, "validation": 500, "test": 500}

# Gender only chooses the pronouns ("her keys", "he will") in summaries.
_PEOPLE = tuple((n, "f") for n in p.FEMALE_NAMES) + tuple((n, "m") for n in p.MALE_NAMES)
_PRONOUNS = {"f": ("she", "her", "her"), "m": ("he", "his", "him")}


class _Chat:
    """One dialogue being written: utterance templates filled from the scenario's slots."""

    def __init__(self, rng: random.Random, slots: dict[str, str]) -> None:
        self.rng = rng
        self.slots = slots
        self.lines: list[str] = []
        self.words = 0

    def say(self, role: str, options: tuple[str, ...], **extra: str) -> None:
        slots = {**self.slots, **extra} if extra else self.slots
        line = f"{self.slots[role]}: {self.rng.choice(options).format_map(slots)}"
        self.lines.append(line)
        self.words += line.count(" ") + 1

    def maybe(self, prob: float, role: str, options: tuple[str, ...], **extra: str) -> bool:
        if self.rng.random() >= prob:
            return False
        self.say(role, options, **extra)
        return True

    def too_short(self) -> bool:
        return len(self.lines) < MIN_TURNS or self.words < MIN_WORDS

    def done(self, summaries: tuple[str, ...]) -> tuple[str, str]:
        summary = self.rng.choice(summaries).format_map(self.slots)
        return "\n".join(self.lines), _cap(summary)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _an(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cast(rng: random.Random, size: int, speakers: int | None = None) -> dict[str, str]:
    """Slots for `size` distinct people: names, pronouns and `group` (the first `speakers`)."""
    slots: dict[str, str] = {}
    for role, (name, gender) in zip("abcd"[:size], rng.sample(_PEOPLE, size), strict=True):
        he, his, him = _PRONOUNS[gender]
        slots.update({role: name, f"{role}_he": he, f"{role}_his": his, f"{role}_him": him})
    slots["group"] = _join([slots[role] for role in "abcd"[: speakers or size]])
    return slots


def _group_size(rng: random.Random, prob_three: float) -> int:
    return 3 if rng.random() < prob_three else 2


def _greet(chat: _Chat, first: str = "a", second: str = "b") -> None:
    if chat.maybe(0.5, first, p.GREETINGS, other=chat.slots[second]):
        chat.maybe(0.6, second, p.GREETING_REPLIES, other=chat.slots[first])


def _close(chat: _Chat, first: str, second: str, thanks: bool = False) -> None:
    """Optional goodbye lines; forced when the chat is too short, dropped when it is too long.

    `thanks` marks `first` as the person who was helped, who thanks rather than just says bye.
    """
    if len(chat.lines) < MAX_TURNS and (chat.too_short() or chat.rng.random() < 0.4):
        chat.say(first, p.THANKS if thanks else p.CLOSINGS)
        if len(chat.lines) < MAX_TURNS and (chat.too_short() or chat.rng.random() < 0.4):
            chat.say(second, p.CLOSING_REPLIES)


def _meeting(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.25)
    s = _cast(rng, size)
    first_time, time = rng.sample(p.TIMES, 2)
    countered = rng.random() < 0.3
    s.update(place=rng.choice(p.MEETING_PLACES), day=rng.choice(p.DAYS), time=time)
    s["ptime"] = first_time if countered else time
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.MEET_ASK_DAY)
    chat.say("b", p.MEET_ASK_DETAILS)
    if size == 3:
        chat.say("c", p.MEET_THIRD_JOINS)
        chat.maybe(0.5, "a", p.WELCOME_THIRD)
    chat.say("a", p.MEET_PROPOSE)
    if countered:
        chat.say("b", p.MEET_COUNTER)
        chat.say("a", p.MEET_ACCEPT_TIME)
    else:
        chat.say("b", p.MEET_CONFIRM)
    _close(chat, "a", "c" if size == 3 else "b")
    return chat.done(p.MEET_SUMMARY)


def _restaurant(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    first_time, time = rng.sample(p.EVENING_TIMES, 2)
    full = rng.random() < 0.25
    s.update(restaurant=rng.choice(p.RESTAURANTS), day=rng.choice(p.DAYS), time=time)
    s.update(people=str(rng.randint(2, 8)), booker=s["b"], ptime=first_time if full else time)
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.REST_ASK)
    chat.say("b", p.REST_SUGGEST)
    chat.maybe(0.6, "a", p.REST_AGREE)
    chat.say("a", p.REST_WHO_BOOKS)
    chat.say("b", p.REST_FULL if full else p.REST_BOOKED)
    _close(chat, "a", "b", thanks=True)
    return chat.done(p.REST_FULL_SUMMARY if full else p.REST_SUMMARY)


def _borrow_item(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 3, speakers=2)  # c is only mentioned: the friend who has the item now
    item, purpose, purpose_sum = rng.choice(p.BORROW_ITEMS)
    s.update(item=item, an_item=_an(item), day=rng.choice(p.DAYS), city=rng.choice(p.CITIES))
    s.update(purpose=purpose.format_map(s), purpose_sum=purpose_sum.format_map(s))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.BORROW_ASK)
    if rng.random() < 0.25:
        chat.say("b", p.BORROW_LENT)
        chat.say("a", p.BORROW_WILL_ASK)
        _close(chat, "a", "b", thanks=True)
        return chat.done(p.BORROW_LENT_SUMMARY)
    chat.say("b", p.BORROW_WHY if rng.random() < 0.6 else p.BORROW_SURE)
    chat.say("a", p.BORROW_PURPOSE)
    if rng.random() < 0.5:
        chat.say("b", p.BORROW_RETURN)
        chat.maybe(0.5, "a", p.ACKS)
    else:
        chat.say("a", p.BORROW_PROMISE)
        chat.maybe(0.6, "b", p.ACKS)
    _close(chat, "a", "b", thanks=True)
    return chat.done(p.BORROW_SUMMARY)


def _lost_item(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    item, it = rng.choice(p.LOST_ITEMS)
    s.update(item=item, it=it, are="are" if it == "them" else "is", day=rng.choice(p.DAYS))
    s["place"] = rng.choice(p.LOST_PLACES)
    outcome = rng.choice(("found", "call", "go_back"))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.LOST_ANNOUNCE)
    if outcome == "found":
        spot, spot_sum = rng.choice(p.LOST_FOUND_SPOTS)
        s.update(spot=spot, spot_sum=spot_sum.format_map(s))
        chat.say("b", p.LOST_FOUND)
        chat.say("a", p.LOST_PICKUP)
        chat.maybe(0.7, "b", p.LOST_PICKUP_OK)
        _close(chat, "a", "b", thanks=True)
        return chat.done(p.LOST_FOUND_SUMMARY)
    chat.say("b", p.LOST_WHERE)
    chat.say("a", p.LOST_PLACE)
    if outcome == "call":
        chat.say("b", p.LOST_CALL)
        _close(chat, "a", "b", thanks=True)
        return chat.done(p.LOST_CALL_SUMMARY)
    chat.maybe(0.7, "b", p.LOST_ADVICE)
    chat.say("a", p.LOST_GO_BACK)
    _close(chat, "a", "b")
    return chat.done(p.LOST_GO_BACK_SUMMARY)


def _running_late(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.3)
    s = _cast(rng, size)
    reason, reason_sum = rng.choice(p.LATE_REASONS)
    s.update(
        minutes=str(rng.choice((5, 10, 15, 20, 25, 30, 40, 45))), event=rng.choice(p.LATE_EVENTS)
    )
    s.update(reason=reason, reason_cap=_cap(reason), reason_sum=reason_sum.format_map(s))
    s["others"] = _join([s["b"], s["c"]] if size == 3 else [s["b"]])
    chat = _Chat(rng, s)
    chat.maybe(0.5, "b", p.LATE_WHERE)
    chat.say("a", p.LATE_ANNOUNCE)
    chat.say("a", p.LATE_REASON)
    chat.say("b", p.LATE_REPLY)
    if size == 3:
        chat.say("c", p.LATE_THIRD)
    chat.say("a", p.LATE_THANKS)
    _close(chat, "a", "b")
    return chat.done(p.LATE_SUMMARY)


def _party(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.3)
    s = _cast(rng, size)
    party = rng.choice(p.PARTIES)
    bring = rng.choice(p.PARTY_BRING)
    s.update(party=party, party_cap=_cap(party), day=rng.choice(p.DAYS), city=rng.choice(p.CITIES))
    s.update(time=rng.choice(p.EVENING_TIMES), bring=bring, bring_cap=_cap(bring))
    s["guests"] = _join([s["b"], s["c"]] if size == 3 else [s["b"]])
    if rng.random() < 0.5:
        venue, venue_sum = rng.choice(p.PARTY_HOMES)
        s.update(venue=venue, venue_sum=venue_sum.format_map(s))
    else:
        s["venue"] = s["venue_sum"] = rng.choice(p.MEETING_PLACES)
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.PARTY_INVITE)
    if size == 2 and rng.random() < 0.25:
        decline, decline_sum = rng.choice(p.PARTY_DECLINES)
        s.update(decline=decline.format_map(s), decline_sum=decline_sum.format_map(s))
        chat.say("b", p.PARTY_DECLINE)
        chat.say("a", p.PARTY_SHAME)
        chat.say("b", p.PARTY_HAVE_FUN)
        return chat.done(p.PARTY_DECLINE_SUMMARY)
    chat.say("b", p.PARTY_ASK)
    chat.say("a", p.PARTY_DETAILS)
    if size == 3:
        chat.say("c", p.PARTY_THIRD)
    chat.say("b", p.PARTY_OFFER)
    chat.say("a", p.PARTY_ASK_BRING)
    chat.maybe(0.6, "b", p.PARTY_WILL_BRING)
    _close(chat, "a", "b")
    return chat.done(p.PARTY_SUMMARY)


def _appointment(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    favour, favour_sum = rng.choice(p.APPT_FAVOURS)
    s.update(kind=rng.choice(p.APPT_KINDS), day=rng.choice(p.DAYS), time=rng.choice(p.DAY_TIMES))
    s.update(favour=favour, favour_sum=favour_sum.format_map(s))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.APPT_ANNOUNCE)
    chat.say("b", p.APPT_REACT)
    chat.maybe(0.6, "a", p.APPT_REASSURE)
    chat.say("a", p.APPT_ASK)
    chat.say("b", p.APPT_YES)
    _close(chat, "a", "b", thanks=True)
    return chat.done(p.APPT_SUMMARY)


def _shopping(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    extra = rng.random() < 0.3
    items = rng.sample(p.GROCERIES, rng.randint(1, 3) + extra)
    asked = items[:-1] if extra else items
    s.update(shop=rng.choice(p.SHOPS), items=_join(asked), all_items=_join(items), extra=items[-1])
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.SHOP_WHERE)
    chat.say("b", p.SHOP_YES)
    chat.say("a", p.SHOP_ASK)
    chat.say("b", p.SHOP_OK)
    if extra:
        chat.say("a", p.SHOP_EXTRA)
        chat.maybe(0.7, "b", p.ACKS)
    else:
        chat.maybe(0.6, "a", p.SHOP_DONE)
    _close(chat, "a", "b", thanks=True)
    return chat.done(p.SHOP_SUMMARY)


def _travel(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    booker, other = rng.choice((("a", "b"), ("b", "a")))
    s.update(city=rng.choice(p.CITIES), day=rng.choice(p.DAYS), daypart=rng.choice(p.DAYPARTS))
    s.update(transport=rng.choice(p.TRANSPORT), currency=rng.choice(p.CURRENCIES))
    s.update(price=str(rng.randrange(15, 95, 5)), booker=s[booker])
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.TRAVEL_OPEN)
    chat.say("b", p.TRAVEL_WHEN)
    chat.say("a", p.TRAVEL_HOW)
    chat.say("b", p.TRAVEL_AGREE)
    chat.say(booker, p.TRAVEL_BOOK)
    chat.maybe(0.6, other, p.TRAVEL_THANKS)
    _close(chat, booker, other)
    return chat.done(p.TRAVEL_SUMMARY)


def _pet_sitting(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    pet, needs = rng.choice(p.PETS)
    s.update(pet=pet, needs=needs, pet_name=rng.choice(p.PET_NAMES), city=rng.choice(p.CITIES))
    s["day"] = rng.choice(p.DAYS)
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.PET_ASK)
    chat.say("b", p.PET_WHEN)
    chat.say("a", p.PET_TRIP)
    chat.say("b", p.PET_HOW)
    chat.say("a", p.PET_NEEDS)
    chat.maybe(0.5, "a", p.PET_KEYS)
    chat.maybe(0.5, "b", p.PET_OK)
    _close(chat, "a", "b", thanks=True)
    return chat.done(p.PET_SUMMARY)


def _watch_together(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.3)
    s = _cast(rng, size)
    show = rng.choice(p.SHOWS)
    venue, venue_sum = rng.choice(p.WATCH_VENUES)
    s.update(show=show, show_cap=_cap(show), day=rng.choice(p.DAYS), time=rng.choice(p.TIMES))
    s.update(venue=venue, venue_sum=venue_sum.format_map(s), snack=rng.choice(p.WATCH_SNACKS))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.WATCH_ASK)
    chat.say("b", p.WATCH_YES)
    if size == 3:
        chat.say("c", p.MEET_THIRD_JOINS)
        chat.maybe(0.5, "a", p.WELCOME_THIRD)
    chat.say("a", p.WATCH_WHERE)
    chat.say("b", p.WATCH_WHEN)
    chat.say("a", p.WATCH_TIME)
    snack = chat.maybe(0.4, "b", p.WATCH_BRING)
    _close(chat, "b", "a")
    return chat.done(p.WATCH_SNACK_SUMMARY if snack else p.WATCH_SUMMARY)


def _gift(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.3)
    s = _cast(rng, size + 1, speakers=size)  # the extra person is a friend who gets the gift
    if rng.random() < 0.5:
        recipient, recipient_sum = rng.choice(p.FAMILY)
    else:
        recipient = recipient_sum = s["abcd"[size]]
    amount = rng.randrange(10, 61, 5) * size * 2
    s.update(recipient=recipient, recipient_sum=recipient_sum, occasion=rng.choice(p.OCCASIONS))
    s.update(gift=rng.choice(p.GIFTS), amount=str(amount), share=str(amount // size))
    s.update(currency=rng.choice(p.CURRENCIES), day=rng.choice(p.DAYS))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.GIFT_ASK)
    chat.say("b", p.GIFT_IDEA)
    if size == 3:
        chat.say("c", p.GIFT_THIRD)
    chat.say("a", p.GIFT_PRICE_ASK)
    chat.say("b", p.GIFT_PRICE)
    chat.say("a", p.GIFT_SPLIT)
    chat.maybe(0.5, "b", p.GIFT_BUY)
    _close(chat, "b", "a")
    return chat.done(p.GIFT_SUMMARY)


def _repair(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    vehicle, problem = rng.choice(p.BREAKDOWNS)
    s.update(vehicle=vehicle, problem=problem, day=rng.choice(p.DAYS))
    s.update(daypart=rng.choice(p.DAYPARTS), currency=rng.choice(p.CURRENCIES))
    s["amount"] = str(rng.randrange(40, 200, 10) * (4 if vehicle == "car" else 1))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.REPAIR_ANNOUNCE)
    if rng.random() < 0.5:
        chat.say("b", p.REPAIR_OFFER)
        chat.say("a", p.REPAIR_WHEN)
        chat.say("b", p.REPAIR_SLOT)
        chat.say("a", p.REPAIR_THANKS)
        _close(chat, "a", "b", thanks=True)
        return chat.done(p.REPAIR_HELP_SUMMARY)
    chat.say("a", p.REPAIR_GARAGE)
    chat.say("b", p.REPAIR_READY_ASK)
    chat.say("a", p.REPAIR_READY)
    chat.maybe(0.6, "b", p.REPAIR_LIFT)
    _close(chat, "a", "b")
    return chat.done(p.REPAIR_GARAGE_SUMMARY)


def _homework(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    venue, venue_sum = rng.choice(p.STUDY_PLACES)
    s.update(subject=rng.choice(p.SUBJECTS), day=rng.choice(p.DAYS), time=rng.choice(p.TIMES))
    s.update(venue=venue, venue_cap=_cap(venue), venue_sum=venue_sum.format_map(s))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.HW_ASK)
    chat.say("b", p.HW_WHICH)
    chat.say("a", p.HW_PART)
    chat.say("a", p.HW_DUE)
    chat.say("b", p.HW_OFFER)
    chat.maybe(0.7, "a", p.HW_THANKS)
    _close(chat, "b", "a")
    return chat.done(p.HW_SUMMARY)


def _moving(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.3)
    s = _cast(rng, size)
    home = rng.choice(p.NEW_HOMES)
    s.update(day=rng.choice(p.DAYS), time=rng.choice(p.DAY_TIMES), home=home, home_cap=_cap(home))
    s["helpers"] = _join([s["b"], s["c"]] if size == 3 else [s["b"]])
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.MOVE_ANNOUNCE)
    if rng.random() < 0.7:
        chat.say("b", p.MOVE_WHERE)
        chat.say("a", p.MOVE_HOME)
    else:
        chat.say("b", p.MOVE_REACT)
    chat.say("a", p.MOVE_HELP)
    chat.say("b", p.MOVE_WHEN)
    chat.say("a", p.MOVE_TIME)
    if size == 3:
        chat.say("c", p.MOVE_THIRD)
    _close(chat, "b", "a")
    return chat.done(p.MOVE_SUMMARY)


def _money(rng: random.Random) -> tuple[str, str]:
    s = _cast(rng, 2)
    s.update(amount=str(rng.randrange(10, 100, 5)), currency=rng.choice(p.CURRENCIES))
    s.update(debt=rng.choice(p.DEBTS), day=rng.choice(p.DAYS))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.MONEY_REMIND)
    chat.say("b", p.MONEY_SORRY)
    chat.say("b", p.MONEY_WHEN)
    chat.say("a", p.MONEY_OK)
    _close(chat, "b", "a")
    return chat.done(p.MONEY_SUMMARY)


def _sport(rng: random.Random) -> tuple[str, str]:
    size = _group_size(rng, 0.2)
    s = _cast(rng, size)
    activity, place = rng.choice(p.SPORTS)
    s.update(activity=activity, place=place, day=rng.choice(p.DAYS), time=rng.choice(p.TIMES))
    chat = _Chat(rng, s)
    _greet(chat)
    chat.say("a", p.SPORT_ASK)
    chat.say("b", p.SPORT_YES)
    if size == 3:
        chat.say("c", p.MEET_THIRD_JOINS)
    chat.say("a", p.SPORT_WHERE)
    chat.say("b", p.SPORT_OK)
    _close(chat, "a", "b")
    return chat.done(p.SPORT_SUMMARY)


_SCENARIO_FUNCS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "meeting": _meeting,
    "restaurant": _restaurant,
    "borrow_item": _borrow_item,
    "lost_item": _lost_item,
    "running_late": _running_late,
    "party": _party,
    "appointment": _appointment,
    "shopping": _shopping,
    "travel": _travel,
    "pet_sitting": _pet_sitting,
    "watch_together": _watch_together,
    "gift": _gift,
    "repair": _repair,
    "homework": _homework,
    "moving": _moving,
    "money": _money,
    "sport": _sport,
}
SCENARIOS: tuple[str, ...] = tuple(_SCENARIO_FUNCS)


def generate_dialogues(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Generates synthetic SAMSum-style dialogues with one-sentence summaries.

    One `random.Random(seed)` drives everything, so the output depends only on `n` and `seed`
    (and the first `k` examples are the same for every `n >= k`).

    Args:
        n: Number of examples.
        seed: Seed of the generator; different seeds give different corpora.

    Returns:
        A list of `{"id", "dialogue", "summary", "scenario"}` dicts. `id` is
        `f"syn-{seed}-{i:06d}"`; `dialogue` is "Name: text" utterances joined by "\\n".

    Raises:
        ValueError: If `n` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        scenario = rng.choice(SCENARIOS)
        dialogue, summary = _SCENARIO_FUNCS[scenario](rng)
        examples.append(
            {
                "id": f"syn-{seed}-{i:06d}",
                "dialogue": dialogue,
                "summary": summary,
                "scenario": scenario,
            }
        )
    return examples


def builtin_splits(sizes: dict[str, int] | None = None) -> dict[str, list[dict[str, str]]]:
    """Returns the built-in corpus, each split generated with its own seed from `SPLIT_SEEDS`.

    Args:
        sizes: Examples per split; defaults to `DEFAULT_SIZES` (train 4000, validation 500,
            test 500). Splits left out are not generated.

    Returns:
        A dict from split name to its examples, in the order of `sizes`.

    Raises:
        ValueError: If a split name is not in `SPLIT_SEEDS`.
    """
    sizes = DEFAULT_SIZES if sizes is None else sizes
    unknown = [name for name in sizes if name not in SPLIT_SEEDS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected names from {list(SPLIT_SEEDS)}")
    return {name: generate_dialogues(size, SPLIT_SEEDS[name]) for name, size in sizes.items()}

"""Word pools and utterance phrasings for the synthetic dialogue corpus in `corpus.py`.

Templates use `str.format` slots filled by the scenario functions: `{a}`, `{b}`, `{c}` are the
participants, `{a_he}`, `{a_his}`, `{a_him}` their pronouns, `{other}` the person addressed in
greetings; the remaining slots are named after what they hold. Every tuple is ordered and is
read with `random.Random.choice`, so editing it changes the corpus for every seed.
"""

# Only [A-Z][a-z]+ names: the dialogue format is "Name: text", as in SAMSum.
FEMALE_NAMES = (
    "Anna", "Kate", "Emma", "Olivia", "Sophie", "Mia", "Laura", "Julia", "Hannah", "Chloe", "Lucy",
    "Grace", "Ella", "Zoe", "Amy", "Rachel", "Megan", "Nina", "Sara", "Eva", "Ruby", "Alice",
    "Jess", "Clara", "Lily", "Maya", "Paula", "Helen", "Diana", "Ivy", "Natalie", "Rosa", "Tina",
    "Fiona",
)  # fmt: skip
MALE_NAMES = (
    "Tom", "Mark", "James", "Jack", "Ben", "Sam", "Leo", "Adam", "Daniel", "Lucas", "Oliver",
    "Harry", "Max", "Peter", "Paul", "Ryan", "Chris", "Nick", "David", "Luke", "Ethan", "Noah",
    "Oscar", "Victor", "Simon", "Henry", "Felix", "Hugo", "Ian", "Jake", "Kevin", "Matt", "Owen",
    "Greg",
)  # fmt: skip
PET_NAMES = (
    "Milo", "Luna", "Bella", "Coco", "Oreo", "Ginger", "Rocky", "Daisy", "Pepper", "Simba",
    "Biscuit", "Nala", "Teddy", "Mochi", "Bruno", "Lola", "Pickle", "Whiskers",
)  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAYPARTS = ("morning", "afternoon", "evening")
DAY_TIMES = (
    "9 am", "10 am", "11 am", "noon", "1 pm", "2 pm", "3 pm", "4 pm", "half past 10",
    "quarter to 11", "quarter past 3", "9:30", "11:45",
)  # fmt: skip
EVENING_TIMES = (
    "5 pm", "6 pm", "7 pm", "8 pm", "9 pm", "half past 6", "half past 7", "quarter past 5",
    "quarter to 8", "5:30", "6:45", "7:15", "8:30",
)  # fmt: skip
TIMES = DAY_TIMES + EVENING_TIMES
CURRENCIES = ("euros", "dollars", "pounds")

MEETING_PLACES = (
    "the cinema", "the park", "the Green Cafe", "the library", "the train station", "the mall",
    "Luigi's", "the gym", "the bowling alley", "the Blue Lagoon bar", "the main square",
    "the museum", "the beach", "the old bridge", "Starbucks", "the food market",
    "the pub on Oak Street", "the pizza place", "the campus cafe", "the swimming pool",
    "the bookshop", "the ice rink", "the sushi bar", "the theatre", "the zoo", "Costa",
    "the Italian place", "the Red Lion", "the town hall", "the botanical garden",
    "the concert hall", "the bakery on the corner",
)  # fmt: skip
RESTAURANTS = (
    "Luigi's", "the Golden Dragon", "Bella Napoli", "the Thai place", "Sakura",
    "the Red Lion", "El Toro", "the steakhouse", "Casa Mia", "the Indian place",
    "the Greek place", "Le Petit Bistro", "the burger place", "the ramen bar",
)  # fmt: skip
CITIES = (
    "Berlin", "Paris", "London", "Rome", "Madrid", "Vienna", "Prague", "Lisbon", "Amsterdam",
    "Dublin", "Barcelona", "Krakow", "Edinburgh", "Oslo", "Brighton", "Manchester", "Milan",
    "Budapest",
)  # fmt: skip
# Places where something can be left behind and someone can be called about it.
LOST_PLACES = (
    "the gym", "the cinema", "the Green Cafe", "the library", "Luigi's", "the bowling alley",
    "the Blue Lagoon bar", "the museum", "the pizza place", "the sushi bar", "the theatre",
    "the swimming pool", "the bookshop", "the Red Lion", "Starbucks", "Costa", "the office",
)  # fmt: skip

# --- small talk shared by all scenarios ---
GREETINGS = (
    "Hi {other}!", "Hey {other}", "hey", "Hi!", "Hello {other}", "{other}, are you there?",
    "Hey, got a minute?", "Hi {other}, busy?", "yo",
)  # fmt: skip
GREETING_REPLIES = (
    "Hi {other}", "Hey!", "Yes?", "hi, what's up?", "Hey, what's up?", "Hello!",
    "Here, what's up?",
)  # fmt: skip
ACKS = ("ok", "sure", "Sure thing", "haha ok", "Right", "Got it", "Okay", "Alright", "cool")
CLOSINGS = (
    "See you!", "See you then!", "ok", "sure thing", "haha great", "Cool", "Perfect", "Awesome",
    "Bye!", "Talk later", "Great",
)  # fmt: skip
# Closings for the person who was helped.
THANKS = ("Great, thanks!", "Thanks a lot!", "Thank you!", "You're a star", "Thanks, see you!")
CLOSING_REPLIES = ("ok", "Bye!", "See ya", "sure thing", "Cool", "No problem!", "Take care")
WELCOME_THIRD = ("Of course!", "Sure, the more the merrier", "Great!", "Yay!", "Sure, {c}!")

# --- meeting ---
MEET_ASK_DAY = (
    "Are you free on {day}?",
    "Do you have time on {day}?",
    "Wanna meet up on {day}?",
    "Any plans for {day}? We haven't seen each other in ages",
    "Shall we finally meet up on {day}?",
)
MEET_ASK_DETAILS = (
    "Yes, I'm free. Where?",
    "Sure! Where do you want to meet?",
    "{day} works for me. What time?",
    "Yeah, sounds good. Where and when?",
    "I think so, what do you have in mind?",
)
MEET_THIRD_JOINS = ("Can I join you?", "Count me in!", "I'm in too if that's ok", "Me too please!")
MEET_PROPOSE = (
    "How about {place} at {ptime}?",
    "Let's meet at {place}, {ptime}?",
    "Maybe {place}? Around {ptime}?",
    "What about {place} at {ptime}? I haven't been there for ages",
)
MEET_COUNTER = (
    "I can't make it at {ptime}. Can we do {time} instead?",
    "{ptime} is difficult for me, {time}?",
    "I finish work late, could we say {time}?",
)
MEET_ACCEPT_TIME = ("Sure, {time} is fine", "Ok, {time} then", "No problem, {time} it is")
MEET_CONFIRM = (
    "Perfect, see you there at {time}!",
    "Ok, {place} at {time} it is",
    "Great, see you on {day} then",
    "Sounds good to me",
    "Deal!",
)
MEET_SUMMARY = (
    "{group} will meet at {place} on {day} at {time}.",
    "{group} are meeting at {place} on {day} at {time}.",
)

# --- restaurant ---
REST_ASK = (
    "Dinner on {day}?",
    "Shall we go out for dinner on {day}?",
    "Fancy dinner out on {day}?",
    "We should celebrate on {day}. Dinner somewhere nice?",
)
REST_SUGGEST = (
    "Yes! What about {restaurant}?",
    "Sure, I've heard {restaurant} is great",
    "Good idea. How about {restaurant}?",
    "Yes please. {restaurant} again?",
)
REST_AGREE = ("Good choice", "Love it", "Perfect, I've been wanting to go there", "ok")
REST_WHO_BOOKS = (
    "Can you book a table for {people} at {ptime}?",
    "Could you call them and book for {people} people? {ptime} maybe?",
    "Will you book? We're {people}, {ptime} would be ideal",
)
REST_FULL = (
    "They were full at {ptime}, so I booked {time}",
    "Just called, {ptime} is taken. I booked {time} instead",
    "No table at {ptime}, only {time}. I took it",
)
REST_BOOKED = (
    "Sure, I'll call them now",
    "Ok, I'll book it for {people} people",
    "No problem, leave it to me",
    "Will do!",
)
REST_FULL_SUMMARY = (
    "{booker} booked a table for {people} at {restaurant} on {day} at {time} as {ptime} was full.",
)
REST_SUMMARY = (
    "{booker} will book a table for {people} at {restaurant} on {day} at {time}.",
    "{booker} is booking a table for {people} at {restaurant} for {day} at {time}.",
)

# --- borrowing an item: (item, what it is for, the same in the summary) ---
BORROW_ITEMS = (
    ("drill", "hang some shelves", "hang some shelves"),
    ("ladder", "paint the ceiling", "paint the ceiling"),
    ("tent", "go camping with my brother", "go camping with {a_his} brother"),
    ("suitcase", "pack for my trip to {city}", "pack for {a_his} trip to {city}"),
    ("projector", "show the holiday photos", "show the holiday photos"),
    ("sleeping bag", "stay over at my cousin's", "stay over at {a_his} cousin's"),
    ("bike pump", "fix my flat tyre", "fix {a_his} flat tyre"),
    ("hair dryer", "dry my hair, mine just broke", "dry {a_his} hair"),
    ("car", "pick up my new sofa", "pick up {a_his} new sofa"),
    ("camera", "take photos at the wedding", "take photos at the wedding"),
    ("lawn mower", "cut the grass", "cut the grass"),
    ("blender", "make smoothies for the party", "make smoothies for the party"),
    ("guitar", "practise for the concert", "practise for the concert"),
    ("sewing machine", "fix my curtains", "fix {a_his} curtains"),
)
BORROW_ASK = (
    "Could I borrow your {item}?",
    "Do you still have that {item}? Can I borrow it?",
    "Can I borrow your {item} for a few days?",
    "I need {an_item}. Could I borrow yours?",
)
BORROW_SURE = ("Sure, no problem", "Of course, it's in the garage", "Yes, take it")
BORROW_WHY = ("Sure, what do you need it for?", "Yes, of course. What for?", "I do. What's it for?")
BORROW_PURPOSE = ("I want to {purpose}", "I need to {purpose}", "Gonna {purpose} this weekend")
BORROW_RETURN = (
    "Sure, just bring it back by {day}",
    "Fine, but I need it back on {day}",
    "Ok, can you return it by {day}?",
)
BORROW_PROMISE = (
    "I'll return it by {day}, promise",
    "I'll give it back on {day} at the latest",
    "You'll have it back on {day}",
)
BORROW_LENT = (
    "Sorry, I lent it to {c} last week. Ask {c}?",
    "{c} has it at the moment, sorry. Try asking {c}",
    "I don't have it, {c} borrowed it. Maybe ask {c}?",
)
BORROW_WILL_ASK = ("Ok, I'll ask {c}", "Thanks, I'll text {c}", "No problem, I'll ask {c} then")
BORROW_SUMMARY = (
    "{a} will borrow {b}'s {item} to {purpose_sum} and return it by {day}.",
    "{b} will lend {a} the {item} until {day} so {a_he} can {purpose_sum}.",
)
BORROW_LENT_SUMMARY = (
    "{b} lent the {item} to {c}, so {a} will ask {c} for it.",
    "{a} wants to borrow {an_item}, but {b} lent it to {c}, so {a} will ask {c}.",
)

# --- lost item: (item, pronoun) ---
LOST_ITEMS = (
    ("keys", "them"), ("wallet", "it"), ("phone", "it"), ("glasses", "them"), ("scarf", "it"),
    ("umbrella", "it"), ("headphones", "them"), ("jacket", "it"), ("ID card", "it"),
    ("gloves", "them"), ("watch", "it"), ("laptop charger", "it"),
)  # fmt: skip
LOST_ANNOUNCE = (
    "I can't find my {item} anywhere!",
    "Have you seen my {item}?",
    "I think I lost my {item}",
    "Disaster, I lost my {item}",
    "Help! My {item} {are} gone",
)
LOST_WHERE = (
    "Where did you last have {it}?",
    "Oh no! When did you last see {it}?",
    "Did you check your bag?",
    "Calm down. Where were you today?",
)
LOST_PLACE = (
    "I had {it} at {place} this morning",
    "I think I left {it} at {place}",
    "The last time was at {place}, I think",
)
LOST_CALL = (
    "I know someone at {place}, I'll call them",
    "Let me call {place}, maybe someone handed {it} in",
    "I'll ring {place} for you, I have their number",
)
LOST_FOUND_SPOTS = (
    ("in my car", "in {b}'s car"),
    ("at my place", "at {b}'s place"),
    ("in my bag", "in {b}'s bag"),
)
LOST_FOUND = (
    "Wait, you left {it} {spot} yesterday!",
    "Haha, your {item} {are} {spot}! You forgot {it} yesterday",
    "Relax, I have {it}. You left {it} {spot}",
)
LOST_ADVICE = (
    "Maybe someone handed {it} in?",
    "Did you ask the staff?",
    "Go back and ask, people usually hand things in",
)
LOST_PICKUP_OK = ("Sure, I'm home all day", "Sure, any time after 5", "Yes, just text me before")
LOST_PICKUP = (
    "Phew! Can I pick {it} up on {day}?",
    "Oh thank god. I'll come by on {day}",
    "You saved my life. {day} ok to pick {it} up?",
)
LOST_GO_BACK = (
    "I'll go back there tomorrow and ask",
    "I'll go back to {place} tomorrow and check",
    "Ok, I'll go back tomorrow morning",
)
LOST_CALL_SUMMARY = ("{b} will call {place} to ask about {a}'s lost {item}.",)
LOST_FOUND_SUMMARY = (
    "{a} left {a_his} {item} {spot_sum} and will pick {it} up on {day}.",
    "{a}'s {item} {are} {spot_sum} and {a_he} will pick {it} up on {day}.",
)
LOST_GO_BACK_SUMMARY = (
    "{a} thinks {a_he} left {a_his} {item} at {place} and will go back there tomorrow.",
    "{a} lost {a_his} {item}, probably at {place}, and will go back tomorrow to ask.",
)

# --- running late: (what the late person says, the summary's "because ..." clause) ---
LATE_REASONS = (
    ("I'm stuck in traffic", "because of traffic"),
    ("my train is delayed", "because {a_his} train is delayed"),
    ("my bus broke down", "because {a_his} bus broke down"),
    ("work ran late", "because work ran late"),
    ("I missed the bus", "because {a_he} missed the bus"),
    ("I overslept", "because {a_he} overslept"),
    ("I had to take my dog to the vet", "because {a_he} had to take {a_his} dog to the vet"),
    ("there's a huge queue at the petrol station", "because of a queue at the petrol station"),
    ("my boss kept me at work", "because {a_his} boss kept {a_him} at work"),
    ("I can't find a parking space", "because {a_he} can't find a parking space"),
)
LATE_EVENTS = (
    "dinner", "lunch", "brunch", "the meeting", "practice", "the film", "rehearsal",
    "the pub quiz", "band practice", "the game",
)  # fmt: skip
LATE_WHERE = ("Where are you?", "Are you coming?", "We're all here, where are you?", "{a}?")
LATE_ANNOUNCE = (
    "Sorry, I'm running {minutes} minutes late",
    "I'll be {minutes} minutes late, sorry!",
    "Bad news, I'll be about {minutes} minutes late",
    "So sorry, I'm going to be {minutes} minutes late",
)
LATE_REASON = ("{reason_cap}", "{reason_cap}, sorry", "{reason_cap}... again", "Ugh, {reason}")
LATE_REPLY = (
    "Ok, we'll start {event} without you then",
    "No worries, we can start {event} a bit later",
    "Ok, don't rush, {event} can wait",
    "Fine, I'll save you a seat for {event}",
)
LATE_THIRD = ("No rush, I'm not there yet either", "haha typical {a}", "We'll wait for you")
LATE_THANKS = (
    "Thanks, you're the best",
    "Sorry again! I'll be there asap",
    "Thanks! On my way",
    "Thank you! I'll hurry",
)
LATE_SUMMARY = (
    "{a} is running {minutes} minutes late for {event} with {others} {reason_sum}.",
    "{a} will be {minutes} minutes late for {event} {reason_sum}.",
)

# --- party invitation ---
PARTIES = (
    "birthday party", "housewarming party", "barbecue", "farewell party", "graduation party",
    "Halloween party", "garden party", "dinner party",
)  # fmt: skip
PARTY_HOMES = (
    ("my place", "{a_his} place"),
    ("my flat", "{a_his} flat"),
    ("my parents' house", "{a_his} parents' house"),
)
PARTY_BRING = (
    "some snacks", "drinks", "a cake", "some chairs", "a salad", "your speaker", "ice",
    "some music",
)  # fmt: skip
PARTY_INVITE = (
    "I'm having a {party} on {day}! Wanna come?",
    "{party_cap} on {day}, you're invited!",
    "You're coming to my {party} on {day}, right?",
    "Are you free on {day}? I'm throwing a {party}",
)
PARTY_ASK = ("Sure! Where and what time?", "Of course! What time?", "Sounds fun! Where is it?")
PARTY_DETAILS = (
    "At {venue}, from {time}",
    "From {time} at {venue}",
    "We start at {time}, at {venue}",
)
PARTY_THIRD = ("Me too! Count me in", "I'll be there too!", "Yay, I'm coming!")
PARTY_OFFER = (
    "Great! Should I bring anything?",
    "I'll be there! Need anything?",
    "Count me in. Can I bring something?",
)
PARTY_ASK_BRING = (
    "Maybe {bring}?",
    "If you could bring {bring}, that would be great",
    "{bring_cap} would be great!",
)
PARTY_WILL_BRING = ("Sure, I'll bring {bring}", "Deal", "No problem!", "Ok, {bring} it is")
PARTY_DECLINES = (
    ("I'm visiting my parents that weekend", "because {b_he} is visiting {b_his} parents"),
    ("I have to work on {day}", "because {b_he} has to work"),
    ("I'll be in {city} for a conference", "because {b_he} will be in {city}"),
    ("my sister is getting married that day", "because {b_his} sister is getting married"),
)
PARTY_DECLINE = (
    "Oh no, {decline}. I'm so sorry!",
    "I'd love to, but {decline}",
    "Damn, {decline}. Sorry!",
)
PARTY_SHAME = ("What a pity! Next time then", "Oh no, we'll miss you", "That's a shame, but ok")
PARTY_HAVE_FUN = ("Have fun!", "Have a great party!", "Sorry again, have fun!", "Enjoy!")
PARTY_SUMMARY = (
    "{a} invited {guests} to {a_his} {party} at {venue_sum} on {day} and {b} will bring {bring}.",
    "{guests} will come to {a}'s {party} on {day} and {b} will bring {bring}.",
)
PARTY_DECLINE_SUMMARY = ("{b} can't come to {a}'s {party} on {day} {decline_sum}.",)

# --- doctor / dentist appointment: (favour asked, summary verb phrase) ---
APPT_KINDS = ("dentist", "doctor", "hospital", "physio", "dermatologist", "GP")
APPT_FAVOURS = (
    ("give me a lift", "give {a} a lift"),
    ("pick up the kids from school", "pick up the kids from school"),
    ("take my shift at work", "take {a_his} shift at work"),
    ("walk the dog", "walk the dog"),
    ("come with me", "go with {a_him}"),
    ("water the plants in the office", "water the plants in the office"),
)
APPT_ANNOUNCE = (
    "I have a {kind} appointment on {day} at {time}",
    "Finally got a {kind} appointment! {day}, {time}",
    "My {kind} appointment is on {day} at {time}",
    "The {kind} can see me on {day} at {time}",
)
APPT_REACT = (
    "Good, you've been putting it off for ages",
    "Oh, is everything ok?",
    "Good for you",
    "Nothing serious I hope?",
)
APPT_REASSURE = ("Just a check-up", "Nothing serious, don't worry", "Routine stuff")
APPT_ASK = (
    "Could you {favour}?",
    "One favour: could you {favour}?",
    "Would you be able to {favour}?",
)
APPT_YES = ("Sure, no problem", "Of course", "Yes, I can do that", "Sure thing, I'm free on {day}")
APPT_SUMMARY = ("{a} has a {kind} appointment on {day} at {time} and {b} will {favour_sum}.",)

# --- shopping for someone ---
GROCERIES = (
    "milk", "eggs", "bread", "bananas", "coffee", "butter", "cheese", "tomatoes", "rice",
    "pasta", "apples", "yoghurt", "orange juice", "toilet paper", "dish soap", "onions",
    "chicken", "tea", "sugar", "flour",
)  # fmt: skip
SHOPS = ("the supermarket", "the corner shop", "Tesco", "Lidl", "Aldi", "the market")
SHOP_WHERE = (
    "Are you still at {shop}? I forgot something",
    "Are you passing {shop} on the way home?",
    "Are you near {shop} by any chance?",
    "Where are you? Still at {shop}?",
)
SHOP_YES = (
    "Yes, why?",
    "Just going in, need anything?",
    "Yes, I'm here now",
    "yep, what do you need?",
)
SHOP_ASK = (
    "Could you get {items}? I forgot this morning",
    "Can you buy {items}, please? We have nothing for dinner",
    "We're out of {items}, could you get some?",
    "We need {items} for tomorrow's breakfast",
)
SHOP_OK = ("Sure. Anything else?", "Ok, got it", "No problem. Anything else?")
SHOP_EXTRA = ("Oh and {extra}!", "And {extra} please", "Maybe {extra} too")
SHOP_DONE = ("That's all, thanks!", "Nothing else, thanks", "That's it, thank you!")
SHOP_SUMMARY = (
    "{b} will buy {all_items} for {a} at {shop}.",
    "{a} asks {b} to buy {all_items} at {shop}.",
)

# --- travel plans ---
TRANSPORT = ("train", "bus", "night train", "night bus", "coach", "plane")
TRAVEL_OPEN = (
    "So are we still going to {city}?",
    "When are we leaving for {city}?",
    "Have you booked anything for {city} yet?",
    "I can't wait for {city}!",
)
TRAVEL_WHEN = (
    "I think we should leave on {day} {daypart}",
    "How about {day} {daypart}?",
    "{day} {daypart} would be best for me",
)
TRAVEL_HOW = (
    "Should we take the {transport}?",
    "By {transport}? It's cheaper",
    "The {transport} would be the easiest",
)
TRAVEL_AGREE = ("Yes, the {transport} is fine", "Ok, {transport} it is", "Sure, works for me")
TRAVEL_BOOK = (
    "I'll book the tickets tonight",
    "I can book the tickets, it's {price} {currency} each",
    "Let me book the tickets then",
)
TRAVEL_THANKS = ("Great, thanks!", "Perfect, send me the details", "You're the best")
TRAVEL_SUMMARY = (
    "{a} and {b} are going to {city} by {transport} on {day} {daypart} and {booker} will book "
    "the tickets.",
    "{booker} will book {transport} tickets to {city} for {day} {daypart} for both of them.",
)

# --- pet sitting: (pet, what it needs) ---
PETS = (
    ("cat", "food twice a day"), ("dog", "a walk in the morning and evening"),
    ("hamster", "fresh water every day"), ("rabbit", "hay and some carrots"),
    ("parrot", "seeds and some company"), ("goldfish", "a pinch of food every morning"),
    ("turtle", "some lettuce every day"),
)  # fmt: skip
PET_ASK = (
    "Could you look after my {pet} while I'm away?",
    "Any chance you could feed my {pet} next week?",
    "Big favour: could you take care of my {pet}?",
)
PET_WHEN = (
    "Sure, when are you leaving?",
    "Of course! How long will you be away?",
    "Where are you going?",
)
PET_TRIP = (
    "I'm going to {city} and I'll be back on {day}",
    "I'm off to {city} until {day}",
    "Just until {day}, I'm visiting my sister in {city}",
)
PET_HOW = (
    "No problem. What does {pet_name} need?",
    "Ok, what do I need to do?",
    "Fine, how often should I come?",
)
PET_NEEDS = (
    "{pet_name} needs {needs}",
    "Just {needs}, {pet_name} is easy",
    "{pet_name} only needs {needs}",
)
PET_KEYS = (
    "I'll drop off the keys tomorrow",
    "The spare key is under the mat",
    "I'll leave the keys with my neighbour",
)
PET_OK = ("Great, {pet_name} will be in good hands", "Ok, no problem", "Have a nice trip!")
PET_SUMMARY = (
    "{b} will take care of {a}'s {pet} {pet_name} while {a_he} is in {city} until {day}.",
    "{b} will look after {pet_name}, {a}'s {pet}, until {day} while {a} is in {city}.",
)

# --- watching a film or a game: (dialogue venue, summary venue) ---
SHOWS = (
    "the match", "the new Marvel film", "the football game", "the derby", "the basketball game",
    "the new Bond film", "the final", "the documentary about whales", "the new Star Wars film",
    "the boxing fight", "the new season of our show", "the Formula 1 race",
)  # fmt: skip
WATCH_VENUES = (
    ("my place", "{a}'s place"), ("the cinema", "the cinema"), ("the pub", "the pub"),
    ("the sports bar", "the sports bar"), ("the Red Lion", "the Red Lion"),
)  # fmt: skip
WATCH_ASK = (
    "Are you watching {show} on {day}?",
    "Do you want to watch {show} together on {day}?",
    "{show_cap} is on {day}! Watching it?",
    "Have you seen {show} yet? Let's watch it on {day}",
)
WATCH_YES = ("Sure! Where?", "I'd love to. Where?", "Good idea! Where should we watch it?")
WATCH_WHERE = ("Let's watch it at {venue}", "How about {venue}?", "What about {venue}? Big screen")
WATCH_WHEN = ("Great, what time?", "Sure. When does it start?", "Ok! What time?")
WATCH_TIME = ("It starts at {time}", "At {time}", "{time}, don't be late!")
WATCH_BRING = ("I'll bring {snack}", "Ok, I'll bring {snack}", "I'm bringing {snack} then")
WATCH_SNACKS = ("beer", "popcorn", "crisps", "pizza", "nachos")
WATCH_SUMMARY = ("{group} will watch {show} at {venue_sum} on {day} at {time}.",)
WATCH_SNACK_SUMMARY = (
    "{group} will watch {show} at {venue_sum} on {day} and {b} will bring {snack}.",
)

# --- buying a gift: (how the siblings call them, how the summary does) ---
FAMILY = (
    ("Mum", "their mum"),
    ("Dad", "their dad"),
    ("Grandma", "their grandma"),
    ("Grandpa", "their grandpa"),
)
OCCASIONS = ("birthday", "anniversary", "retirement", "graduation", "wedding")
GIFTS = (
    "a scarf", "a cookbook", "a nice watch", "perfume", "a board game", "a cooking class",
    "concert tickets", "a plant", "a photo album", "an e-reader", "a wine set", "a spa voucher",
)  # fmt: skip
GIFT_ASK = (
    "{recipient}'s {occasion} is next week! Any gift ideas?",
    "We need to buy something for {recipient}'s {occasion}",
    "Any ideas for {recipient}'s {occasion} present?",
)
GIFT_IDEA = (
    "What about {gift}?",
    "Maybe {gift}? {recipient} would love that",
    "I saw {gift} in town, {recipient} would like it",
)
GIFT_PRICE_ASK = ("Good idea! How much is it?", "Love it. How much?", "Perfect, what does it cost?")
GIFT_PRICE = ("{amount} {currency}", "About {amount} {currency}", "It's {amount} {currency}")
GIFT_THIRD = ("Great idea!", "Yes, {recipient} would love it", "I'm in")
GIFT_SPLIT = ("Ok, let's split it", "Let's split it then, {share} each", "Fine, we split it")
GIFT_BUY = ("I'll buy it on {day}", "I can order it on {day}", "I'll get it on {day} after work")
GIFT_SUMMARY = (
    "{group} will buy {gift} for {recipient_sum}'s {occasion} and split the {amount} {currency}.",
    "{group} will split the {amount} {currency} for {gift} for {recipient_sum}'s {occasion}.",
)

# --- car or bike repair: (vehicle, problem) ---
BREAKDOWNS = (
    ("bike", "has a flat tyre"), ("bike", "has a broken chain"), ("bike", "has bad brakes"),
    ("car", "won't start"), ("car", "has a dead battery"), ("car", "is making a strange noise"),
    ("scooter", "won't start"), ("motorbike", "is leaking oil"),
)  # fmt: skip
REPAIR_ANNOUNCE = (
    "My {vehicle} {problem} again",
    "Ugh, my {vehicle} {problem}",
    "Guess what, my {vehicle} {problem}",
)
REPAIR_OFFER = (
    "Oh no. Do you need help?",
    "Again? Want me to take a look?",
    "I can help you fix it if you want",
)
REPAIR_WHEN = (
    "That would be great! When are you free?",
    "Yes please, I can't do it myself",
    "Would you? When?",
)
REPAIR_SLOT = ("{day} {daypart}?", "How about {day} {daypart}?", "I'm free on {day} {daypart}")
REPAIR_THANKS = ("Perfect, I'll buy the parts", "Great, thanks so much", "You're a star")
REPAIR_GARAGE = (
    "Already at the garage. The repair will cost {amount} {currency}",
    "The garage says the repair will cost {amount} {currency}",
    "I took it to the garage, {amount} {currency} for the repair",
)
REPAIR_READY_ASK = (
    "Ouch. When will it be ready?",
    "That's a lot! When can you pick it up?",
    "Expensive... how long will it take?",
)
REPAIR_READY = ("On {day}", "Hopefully on {day}", "They said {day}")
REPAIR_LIFT = ("I can drive you until then", "Let me know if you need a lift", "Poor you")
REPAIR_HELP_SUMMARY = (
    "{b} will help {a} fix {a_his} {vehicle}, which {problem}, on {day} {daypart}.",
)
REPAIR_GARAGE_SUMMARY = (
    "{a}'s {vehicle} repair at the garage will cost {amount} {currency} and it will be ready on "
    "{day}.",
)

# --- homework help ---
SUBJECTS = (
    "maths",
    "chemistry",
    "physics",
    "French",
    "history",
    "biology",
    "statistics",
    "Spanish",
    "English",
    "economics",
)
STUDY_PLACES = (
    ("the library", "the library"),
    ("the campus cafe", "the campus cafe"),
    ("my place", "{b}'s place"),
    ("the study room", "the study room"),
)
HW_ASK = (
    "Can you help me with the {subject} homework?",
    "I'm stuck with the {subject} homework",
    "Do you understand the {subject} homework? I don't get it at all",
)
HW_WHICH = ("Sure, which part?", "Yes, what's the problem?", "I finished it yesterday. What part?")
HW_PART = (
    "The last three exercises",
    "Question 4, I've been on it for an hour",
    "Honestly all of it",
)
HW_DUE = ("And it's due on {day}", "It's due {day}...", "Due on {day}, I'm panicking")
HW_OFFER = (
    "Let's meet at {venue} at {time} and I'll explain it",
    "Come to {venue} at {time}, I'll show you",
    "{venue_cap} at {time}? I'll explain",
)
HW_THANKS = ("You're a lifesaver!", "Thank you so much!", "Great, see you there")
HW_SUMMARY = (
    "{b} will help {a} with the {subject} homework at {venue_sum} at {time}.",
    "{b} will explain the {subject} homework, due on {day}, to {a} at {time}.",
)

# --- moving house ---
NEW_HOMES = (
    "a flat near the park",
    "a house in the suburbs",
    "a studio in the city centre",
    "a bigger flat near work",
    "a small house by the river",
)
MOVE_ANNOUNCE = (
    "I'm moving on {day}!",
    "Finally found a new place, moving on {day}",
    "Big news: I'm moving out on {day}",
)
MOVE_WHERE = ("Congrats! Where to?", "Wow, where's the new place?", "Finally! Where to?")
MOVE_REACT = ("Congrats!", "Finally!", "Wow, good for you")
MOVE_HOME = ("{home_cap}", "It's {home}, I love it", "{home_cap}, finally")
MOVE_HELP = (
    "Could you help me carry the boxes?",
    "Any chance you could help me with the boxes?",
    "I have so many boxes, could you help?",
)
MOVE_WHEN = ("Sure, what time?", "Of course. When should I come?", "Yes, when?")
MOVE_TIME = ("{time}? I've rented a van", "Around {time}. Pizza and beer on me!", "{time} if ok")
MOVE_THIRD = ("I can help too!", "Count me in for the boxes", "I'll come too")
MOVE_SUMMARY = ("{a} is moving on {day} and {helpers} will help {a_him} with the boxes at {time}.",)

# --- paying back money ---
DEBTS = (
    "the concert tickets",
    "dinner last night",
    "the taxi",
    "the groceries",
    "the hotel",
    "the electricity bill",
    "the pizza",
    "the train tickets",
)
MONEY_REMIND = (
    "Hi, just a reminder about the {amount} {currency} for {debt}",
    "Don't forget you owe me {amount} {currency} for {debt}",
    "Could you send me the {amount} {currency} for {debt}?",
)
MONEY_SORRY = ("Oh sorry, I totally forgot!", "Yes, sorry! I'll pay you back", "Right, sorry")
MONEY_WHEN = (
    "I'll transfer it on {day} when I get paid",
    "Can I give you cash on {day}?",
    "I'll send it on {day}, is that ok?",
)
MONEY_OK = ("Sure, no rush", "Ok, thanks", "Perfect")
MONEY_SUMMARY = (
    "{b} owes {a} {amount} {currency} for {debt} and will pay {a_him} back on {day}.",
    "{b} will pay {a} back the {amount} {currency} for {debt} on {day}.",
)

# --- doing sport together: (activity, where) ---
SPORTS = (
    ("go running", "the park"), ("play tennis", "the tennis club"), ("go swimming", "the pool"),
    ("go climbing", "the climbing wall"), ("go to the gym", "the gym on Park Road"),
    ("play squash", "the sports centre"), ("go cycling", "the old bridge"),
    ("play badminton", "the sports hall"),
)  # fmt: skip
SPORT_ASK = (
    "Do you want to {activity} on {day}?",
    "I want to {activity} on {day}, are you in?",
    "Shall we {activity} on {day}? I need to get fit",
)
SPORT_YES = ("Sure! What time?", "Yes! Where and when?", "Good idea, I'm in")
SPORT_WHERE = ("{time} at {place}?", "At {place}, around {time}?", "How about {place} at {time}?")
SPORT_OK = ("That's early, but ok", "Perfect, I'll be there", "Ok, see you there")
SPORT_SUMMARY = ("{group} will {activity} at {place} on {day} at {time}.",)

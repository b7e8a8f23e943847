"""Names and lines the simulated world is made of.

They deliberately include non-ASCII text and text that looks like HTML, so the
dashboard's escaping and encoding are exercised by every demo and every test.
"""

# Non-ASCII look-alike letters and dashes are the point of this module.
# ruff: noqa: RUF001

from __future__ import annotations

OPERATOR_FIRST_NAMES: tuple[str, ...] = (
    "Asha",
    "Zoë",
    "Björn",
    "Łukasz",
    "José",
    "Søren",
    "Chloé",
    "Ayşe",
    "Nguyễn",
    "Mikołaj",
    "Ólafur",
    "Renée",
    "Priya",
    "Kenji",
    "Fatima",
    "Hamid",
    "Ingrid",
    "Tomás",
    "Amélie",
    "Dmitri",
    "Wei",
    "Grace",
    "Omar",
    "Lena",
)

OPERATOR_LAST_NAMES: tuple[str, ...] = (
    "Rao",
    "Ångström",
    "Þórsson",
    "Żółć",
    "Núñez",
    "Kierkegård",
    "Dubois",
    "Yılmaz",
    "Thị Hà",
    "Kopernik",
    "Arnalds",
    "O'Connor",
    "Iyer",
    "Tanaka",
    "Haddad",
    "Karimi",
    "Lindqvist",
    "García",
    "Lefèvre",
    "Volkov",
    "Chen",
    "Müller",
    "Okafor",
    "Novák",
)

VISITOR_NAMES: tuple[str, ...] = (
    "Zoë Ångström",
    "Дмитрий Иванов",
    "محمد علي",
    "田中 太郎",
    "<b>urgent</b>",
    "<script>alert(1)</script>",
    "Renée O'Brien",
    "Jürgen Weiß",
    "Siobhán Ní Bhriain",
    "Ana-María Peña",
    "Visitor 4821",
    "Élodie & Co",
    'Marta "Mags" Kowalska',
    "김민준",
    "Ιωάννης Παπαδόπουλος",
    "Guest",
    "Chris O'Neil",
    "Nikolai Тесла",
    "Aarav Sharma",
    "Léa Fontaine",
)

COUNTRIES: tuple[tuple[str, str], ...] = (
    ("Sweden", "Göteborg"),
    ("Germany", "München"),
    ("France", "Besançon"),
    ("India", "Chennai"),
    ("Japan", "Tōkyō"),
    ("Brazil", "São Paulo"),
    ("United States", "San Francisco"),
    ("Poland", "Łódź"),
    ("Iceland", "Reykjavík"),
    ("Türkiye", "İzmir"),
)

QUESTIONS: tuple[str, ...] = (
    "Hi, my order #4471 hasn't arrived yet",
    "<b>urgent</b> I was charged twice!",
    "Can I change my plan to annual billing?",
    "<script>alert(1)</script>",
    "Wie kann ich meine Rechnung herunterladen?",
    "Le paiement a échoué, que faire ?",
    "How do I reset my password? 🙂",
    "Is the price < 5€ & > 3€ per seat?",
    "Do you ship to Reykjavík?",
    "I need to talk to sales about 500 licences",
    "注文をキャンセルしたいです",
    "The invoice says 'Zylker Ltd' but we're \"Zylker GmbH\"",
)

VISITOR_LINES: tuple[str, ...] = (
    "Thanks, one moment please",
    "It's order 4471, placed last Tuesday",
    "Still waiting…",
    "<b>urgent</b> please hurry",
    "Can you check again?",
    "Ok that worked, thank you! 🙏",
    "No, that's not what I meant",
    "Here is the screenshot: <img src=x onerror=alert(1)>",
    "Danke schön!",
    "Merci beaucoup, c'est réglé",
    "What about the refund?",
    "Hello?? is anyone there?",
    "My email is zoë@example.org",
    "5 < 6 && 7 > 3",
)

OPERATOR_LINES: tuple[str, ...] = (
    "Hi! Let me look into that for you.",
    "Could you share your order number?",
    "I've escalated this to our billing team.",
    "Thanks for waiting — I can see the order now.",
    "The refund will reach you in 3–5 working days.",
    "Is there anything else I can help with?",
    "Entschuldigung für die Verzögerung.",
    "I've sent you a reset link 🙂",
    "Please don't paste card numbers here <b>ever</b>.",
    "Let me check with a colleague.",
)

GREETINGS: tuple[str, ...] = (
    "Hi, I'm here to help!",
    "Hello! Thanks for reaching out.",
    "Hej! How can I help today?",
)

FEEDBACK_LOW: tuple[str, ...] = (
    "Waited far too long, and the problem is not solved.",
    "<b>Terrible</b> — nobody answered my question",
    "Operator left mid-chat 😞",
    "Pas très utile.",
)

FEEDBACK_HIGH: tuple[str, ...] = (
    "Great help, thank you!",
    "Schnell und freundlich.",
    "Solved in two minutes 🎉",
)

TRANSFER_NOTES: tuple[str, ...] = (
    "Billing question, over to you",
    "Needs a refund approval",
    "Visitor asked for a supervisor <b>now</b>",
)

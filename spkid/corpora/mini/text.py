"""Random sentences for the mini corpus: a small English grammar and word salads for the
other languages the voices speak (read with that language's letter-to-sound rules)."""

from __future__ import annotations

import numpy as np

_EN = {
    "det": "the a this that every one some another my our their his her".split(),
    "adj": ("old new small large quiet loud early late bright dark green red blue cold warm "
            "happy careful strange simple heavy gentle rapid silent golden wooden distant "
            "famous little modern ancient busy lonely clever").split(),
    "noun": ("river mountain teacher doctor window garden market letter engine village story "
             "question answer painter bridge forest island kitchen morning evening station "
             "camera student festival harbour library soldier machine farmer candle journey "
             "picture engineer message pocket winter summer museum concert captain orchestra "
             "neighbour bicycle computer program theatre").split(),
    "verb": ("found painted opened carried watched followed visited remembered described "
             "repaired discovered borrowed explained ordered finished forgot noticed built "
             "carried moved cleaned answered changed collected").split(),
    "iverb": ("arrived waited laughed disappeared stopped listened travelled returned "
              "slept worked smiled whispered").split(),
    "prep": "near behind under beside across through before after without inside above".split(),
    "adv": ("quickly slowly carefully yesterday today again finally suddenly quietly "
            "happily early later together").split(),
    "name": ("Anna Peter Maria James Olivia Thomas Sofia Daniel Laura Michael Clara Robert "
             "Helen George Martin Julia").split(),
    "conj": "and but because while although so".split(),
    "q": "why where when how".split(),
}

_OTHER = {
    "de": ("der die das und ist nicht ein eine mit auf für heute morgen gestern Haus Stadt Fluss "
           "Berg Lehrer Kind Garten Fenster Wasser Zeit Jahr gross klein schnell langsam schön "
           "alt neu gehen kommen sehen machen sagen finden bringen arbeiten spielen warten wir "
           "ihr sie er immer wieder vielleicht zusammen Abend Wetter Strasse Freund Musik").split(),
    "fr": ("le la les et est un une avec pour dans sur aujourd'hui demain hier maison ville "
           "rivière montagne professeur enfant jardin fenêtre eau temps année grand petit vite "
           "lentement beau vieux nouveau aller venir voir faire dire trouver porter travailler "
           "jouer attendre nous vous ils elle toujours encore peut-être ensemble soir musique ami").split(),
    "es": ("el la los las y es un una con para en sobre hoy mañana ayer casa ciudad río "
           "montaña maestro niño jardín ventana agua tiempo año grande pequeño rápido despacio "
           "bonito viejo nuevo ir venir ver hacer decir encontrar llevar trabajar jugar esperar "
           "nosotros ellos ella siempre otra vez quizás juntos noche música amigo").split(),
    "it": ("il la gli le e è un una con per in su oggi domani ieri casa città fiume montagna "
           "maestro bambino giardino finestra acqua tempo anno grande piccolo veloce piano bello "
           "vecchio nuovo andare venire vedere fare dire trovare portare lavorare giocare aspettare "
           "noi voi loro lei sempre ancora forse insieme sera musica amico").split(),
    "nl": ("de het een en is niet met op voor vandaag morgen gisteren huis stad rivier berg "
           "leraar kind tuin raam water tijd jaar groot klein snel langzaam mooi oud nieuw gaan "
           "komen zien maken zeggen vinden brengen werken spelen wachten wij jullie zij hij altijd "
           "weer misschien samen avond muziek vriend").split(),
    "pl": ("i w na z do nie to jest dom miasto rzeka góra nauczyciel dziecko ogród okno woda "
           "czas rok duży mały szybko wolno piękny stary nowy iść widzieć robić mówić znaleźć "
           "pracować czekać zawsze znowu razem wieczór muzyka przyjaciel").split(),
    "sv": ("och i på med för inte det en ett hus stad flod berg lärare barn trädgård fönster "
           "vatten tid år stor liten snabbt långsamt vacker gammal ny gå komma se göra säga "
           "hitta arbeta vänta alltid igen tillsammans kväll musik vän").split(),
    "pt": ("o a os as e é um uma com para em sobre hoje amanhã ontem casa cidade rio montanha "
           "professor criança jardim janela água tempo ano grande pequeno rápido devagar bonito "
           "velho novo ir vir ver fazer dizer encontrar trabalhar esperar sempre juntos noite música").split(),
    "ru": ("i v na s k ne eto dom gorod reka gora uchitel rebenok sad okno voda vremya god "
           "bolshoy malenkiy bystro medlenno krasivy stary novy idti videt delat govorit "
           "rabotat zhdat vsegda snova vmeste vecher muzyka drug").split(),
}


def _pick(rng: np.random.Generator, words: list[str]) -> str:
    return words[int(rng.integers(len(words)))]


def _english_clause(rng: np.random.Generator) -> str:
    w = _EN
    subj = _pick(rng, w["name"]) if rng.random() < 0.3 else \
        f"{_pick(rng, w['det'])} {_pick(rng, w['adj']) + ' ' if rng.random() < 0.5 else ''}{_pick(rng, w['noun'])}"
    if rng.random() < 0.4:
        out = f"{subj} {_pick(rng, w['iverb'])}"
    else:
        out = f"{subj} {_pick(rng, w['verb'])} {_pick(rng, w['det'])} {_pick(rng, w['noun'])}"
    if rng.random() < 0.5:
        out += f" {_pick(rng, w['prep'])} the {_pick(rng, w['noun'])}"
    if rng.random() < 0.4:
        out += f" {_pick(rng, w['adv'])}"
    return out


def sentence(rng: np.random.Generator, lang: str, n_words: int) -> str:
    """A text of about ``n_words`` words in ``lang`` (English grammar; word salad otherwise)."""
    n_words = max(3, n_words)
    if lang == "en":
        parts: list[str] = []
        count = 0
        while count < n_words:
            clause = _english_clause(rng)
            if parts:
                clause = (_pick(rng, _EN["conj"]) + " " + clause) if rng.random() < 0.6 else clause
                if rng.random() < 0.15:
                    clause = f"{_pick(rng, _EN['q'])} did {_english_clause(rng)}"
            parts.append(clause)
            count += len(clause.split())
        text = ", ".join(parts) if len(parts) > 1 and rng.random() < 0.5 else ". ".join(parts)
        return text[0].upper() + text[1:] + "."
    words = _OTHER.get(lang)
    if words is None:
        raise ValueError(f"no word list for language '{lang}' (known: en {' '.join(sorted(_OTHER))})")
    picked = [_pick(rng, words) for _ in range(n_words)]
    # Sentence breaks every 5-9 words give the voices natural phrase boundaries.
    out, since = [], 0
    for word in picked:
        out.append(word)
        since += 1
        if since >= 5 and rng.random() < 0.25:
            out[-1] += "."
            since = 0
    text = " ".join(out)
    return text[0].upper() + text[1:] + "."


LANGUAGES = ("en",) + tuple(sorted(_OTHER))

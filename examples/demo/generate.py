#!/usr/bin/env python3
"""Writes sample.jsonl, the sample `hotlead demo` replays: three dozen people, Japanese and
English, web forms and Segment calls over six weeks, some browsing anonymously before they
fill in a form. Deterministic: the same file every run."""
import json, random
from datetime import datetime, timedelta, timezone

rng = random.Random(20261001)
JST = timezone(timedelta(hours=9))
START = datetime(2026, 10, 1, 9, 0, tzinfo=JST)
lines, counter = [], [0]

def mid():
    counter[0] += 1
    return f"demo-{counter[0]:05d}"

def at(day, hour=10, minute=0):
    return (START + timedelta(days=day, hours=hour - 9, minutes=minute)).isoformat()

UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel; link scanner)"

def page(when, path, anon=None, user=None, ua=UA, campaign=None):
    call = {"type": "page", "messageId": mid(), "timestamp": when, "name": path,
            "context": {"page": {"path": path, "url": "https://www.example.co.jp" + path}, "userAgent": ua}}
    if anon: call["anonymousId"] = anon
    if user: call["userId"] = user
    if campaign: call["context"]["campaign"] = campaign
    lines.append({"at": when, "call": call})

def track(when, event, anon=None, user=None, props=None):
    call = {"type": "track", "messageId": mid(), "timestamp": when, "event": event, "properties": props or {},
            "context": {"userAgent": UA}}
    if anon: call["anonymousId"] = anon
    if user: call["userId"] = user
    lines.append({"at": when, "call": call})

def form(when, form_id, fields, anon):
    lines.append({"at": when, "form": form_id, "fields": fields, "anonymousId": anon})

JA = [
    ("株式会社東都製作所", "山田 太郎", "情報システム部 部長", "１，２００名", "600億円", "製造業", "東京都"),
    ("関西電機株式会社", "佐藤 花子", "経営企画部 課長", "5,000名以上", "1兆円", "製造業", "大阪府"),
    ("株式会社メガバンク", "伊藤 四郎", "DX推進室 室長", "20,000名", "1兆5,000億円", "金融業", "東京都"),
    ("中部ロジスティクス(株)", "加藤 三郎", "物流本部 本部長", "3,000名", "800億円", "運輸業", "愛知県"),
    ("株式会社タイニー", "鈴木 一郎", "代表取締役", "50名", "3,000万円", "情報通信業", "東京都"),
    ("ミッドシステムズ株式会社", "田中 次郎", "開発部 マネージャー", "100〜499名", "10億円", "情報通信業", "福岡県"),
    ("株式会社みなと商事", "高橋 美咲", "営業企画部", "300名", "5億円", "卸売業", "神奈川県"),
    ("グローバル化学株式会社", "渡辺 健", "研究開発本部 部長", "8,000名", "1,200億円", "化学工業", "東京都"),
    ("株式会社北斗ソフト", "小林 優", "エンジニア", "30名", "1,000万円", "情報通信業", "北海道"),
    ("西日本ホールディングス株式会社", "中村 亮", "取締役 CIO", "12,000名", "2,000億円", "小売業", "兵庫県"),
    ("株式会社さくら食品", "松本 由美", "総務部", "800名", "50億円", "食料品製造業", "埼玉県"),
    ("東京インフラ株式会社", "井上 大輔", "インフラ企画部 部長", "1,500名", "700億円", "建設業", "東京都"),
    ("株式会社スモールワークス", "木村 翔", "代表", "8名", "500万円", "サービス業", "京都府"),
    ("京浜重工業株式会社", "林 直樹", "生産技術部 部長", "6,000名", "900億円", "製造業", "神奈川県"),
    ("株式会社ミライ教育", "清水 香", "事業部長", "150名", "1億円", "教育", "千葉県"),
    ("大和物産株式会社", "山口 誠", "情報システム部 課長", "2,500名", "450億円", "卸売業", "大阪府"),
    ("株式会社オオサカ精機", "森 健太", "品質保証部", "60名", "2,000万円", "製造業", "大阪府"),
    ("日本トラスト保険株式会社", "池田 真理", "デジタル戦略部 部長", "9,000名", "1,000億円", "保険業", "東京都"),
    ("株式会社グリーンファーム", "橋本 悟", "代表取締役社長", "25名", "1,000万円", "農業", "熊本県"),
    ("株式会社アーバン開発", "石川 綾", "企画部 部長", "1,100名", "520億円", "不動産業", "東京都"),
    ("東海マテリアル株式会社", "前田 浩", "購買部 部長", "4,000名", "300億円", "製造業", "愛知県"),
    ("株式会社フューチャーラボ", "岡田 陽介", "CTO", "40名", "5,000万円", "情報通信業", "東京都"),
]
EN = [
    ("Acme Corporation", "Jane Doe", "VP of Operations", "2500", "US"),
    ("Globex Ltd.", "Hank Scorpio", "CEO", "15000", "UK"),
    ("Initech", "Bill Lumbergh", "Director of IT", "800", "US"),
    ("Umbrella KK", "Alice Abernathy", "Head of Procurement", "30000", "JP"),
    ("Tiny Apps LLC", "Sam Student", "Intern", "5", "US"),
    ("Northwind Traders", "Nancy Davolio", "Sales Manager", "400", "US"),
    ("Contoso Pharma", "Ken Myer", "Director, Digital", "12000", "DE"),
    ("Stark Industrial", "Pepper Potts", "COO", "50000", "US"),
    ("Wayne Logistics", "Lucius Fox", "CTO", "7000", "US"),
    ("Hooli", "Gavin Belson", "CEO", "20000", "US"),
    ("Pied Piper", "Richard Hendricks", "CEO", "12", "US"),
    ("Soylent Foods", "Frank Thorn", "Procurement Lead", "3000", "US"),
    ("Vandelay Industries", "Art Vandelay", "Importer", "60", "US"),
    ("Cyberdyne Systems", "Miles Dyson", "Director of R&D", "9000", "US"),
]

def slug(i):
    return f"anon-{i:03d}"

people = []
for i, (company, name, title, employees, capital, industry, pref) in enumerate(JA):
    email = f"user{i:02d}@" + ["totoseisakusho", "kansai-denki", "megabank", "chubu-logi", "tiny", "midsys", "minato",
                                "global-chem", "hokuto", "nishinihon-hd", "sakura-foods", "tokyo-infra", "smallworks",
                                "keihin-heavy", "mirai-edu", "yamato-bussan", "osaka-seiki", "nihon-trust", "greenfarm",
                                "urban-dev", "tokai-material", "futurelab"][i] + ".example.jp"
    if i in (4, 8):
        email = email.upper().replace("@", "＠").replace(".", "．")  # full-width forms, as typed
    people.append(("ja", i, company, name, title, employees, capital, industry, pref, email))
for j, (company, name, title, employees, country) in enumerate(EN):
    domain = company.lower().replace(" ", "").replace(".", "").replace(",", "") + ".example.com"
    if j == 4:
        domain = "gmail.com"
    people.append(("en", len(JA) + j, company, name, title, employees, None, None, country, f"{name.split()[0].lower()}@{domain}"))

for kind, i, company, name, title, employees, capital, industry, region, email in people:
    anon = slug(i)
    interest = rng.random()
    first_day = rng.randint(0, 30)
    # anonymous browsing first, for most people
    for k in range(rng.randint(0, 3)):
        page(at(first_day + k, 9 + k, 5), rng.choice(["/", "/features", "/blog/lead-scoring", "/pricing"]), anon=anon,
             campaign={"source": "google", "medium": "cpc", "name": "brand"} if k == 0 and interest > 0.5 else None)
    form_day = first_day + rng.randint(1, 4)
    if kind == "ja":
        fields = {"会社名": company, "お名前": name, "メールアドレス": email, "役職": title, "従業員数": employees,
                  "資本金": capital, "業種": industry, "都道府県": region, "ご相談内容": "リード管理の効率化"}
        form(at(form_day, 14, 20), "contact", fields, anon)
    else:
        fields = {"Company": company, "Full name": name, "Work email": email, "Job title": title, "Company size": employees,
                  "Country": region, "territory": "overseas"}
        form(at(form_day, 15, 40), "download", fields, anon)
        track(at(form_day, 15, 41), "Document Downloaded", anon=anon, props={"document": "Lead scoring guide", "category": "whitepaper"})
    # known behaviour afterwards
    views = 1 + int(interest * 5)
    for k in range(views):
        day = min(form_day + 1 + k * rng.randint(1, 4), 42)
        page(at(day, 10 + k % 8, 30), rng.choice(["/pricing", "/pricing", "/pricing/enterprise", "/case-studies", "/docs/start"]), anon=anon)
    if interest > 0.8:
        track(at(min(form_day + 8, 42), 11, 0), "Demo Requested", anon=anon, props={"plan": "enterprise"})
    if i % 7 == 3:
        # a mail link scanner opening the pricing link in a newsletter: filtered, never scored
        page(at(min(form_day + 2, 42), 3, 0), "/pricing", anon=anon, ua=SCANNER)

# one resend of an earlier call (same messageId): stored once
for entry in lines:
    if "call" in entry and entry["call"]["type"] == "page":
        dup = dict(entry)
        lines.append(dup)
        break
# a bot filling the honeypot
form(at(20, 3, 3), "contact", {"会社名": "spam", "メールアドレス": "bot@spam.example", "website": "http://spam.example"}, "anon-bot")

lines.sort(key=lambda e: (e["at"], json.dumps(e, ensure_ascii=False)))
with open("sample.jsonl", "w") as f:
    for entry in lines:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
print(len(lines), "entries,", len(people), "people")

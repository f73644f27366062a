package sandbox

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Posting content is a pure function of (seed, sequence number): each posting
// gets its own PCG stream, so the same seed gives the same postings however
// requests and the generator interleave, and fault rolls never shift them.
//
// The package-level tables below are read-only vocabulary; nothing writes them.

type category struct {
	titles []string
	skills []string
	lines  []string
	hourly float64 // chance the budget is hourly
}

var categories = []category{
	{
		titles: []string{"Go backend developer for %s API", "Build a REST service in Go for %s", "Fix concurrency bugs in our Go %s service"},
		skills: []string{"go", "redis", "postgresql", "docker", "grpc", "rest-api", "kubernetes"},
		lines:  []string{"We run a small Go service that needs new endpoints and better tests.", "The codebase is about 20k lines of Go with Redis and Postgres behind it."},
		hourly: 0.5,
	},
	{
		titles: []string{"Python data pipeline for %s", "Automate %s data cleaning in Python", "ETL scripts in Python for %s exports"},
		skills: []string{"python", "pandas", "data", "sql", "airflow", "etl", "aws"},
		lines:  []string{"We get CSV exports every day and need them cleaned, merged and loaded into our warehouse.", "Looking for someone comfortable with pandas and messy data."},
		hourly: 0.4,
	},
	{
		titles: []string{"Data analysis and report on %s sales", "Analyse our %s survey data and deliver a report", "Dashboard and monthly report for %s"},
		skills: []string{"data", "excel", "python", "tableau", "statistics", "report", "power-bi"},
		lines:  []string{"You will deliver a written report with charts and a short summary for management.", "Data is in Google Sheets, around 50k rows."},
		hourly: 0.2,
	},
	{
		titles: []string{"Web scraper for %s listings", "Scrape product prices from %s sites", "Crawler to collect %s data daily"},
		skills: []string{"python", "scrapy", "selenium", "data", "web-scraping", "javascript"},
		lines:  []string{"Need a reliable scraper that runs daily and writes results to a spreadsheet.", "Sites use some JavaScript rendering and basic rate limiting."},
		hourly: 0.3,
	},
	{
		titles: []string{"React developer for %s dashboard", "Frontend fixes on our %s web app", "Build a landing page for %s"},
		skills: []string{"react", "typescript", "javascript", "css", "next.js", "figma"},
		lines:  []string{"Designs are ready in Figma; we need pixel-accurate implementation.", "Existing app uses React 18 and TypeScript."},
		hourly: 0.5,
	},
	{
		titles: []string{"Mobile app MVP for %s", "Flutter developer for %s app", "Fix crashes in our %s iOS app"},
		skills: []string{"flutter", "swift", "kotlin", "react-native", "firebase", "mobile"},
		lines:  []string{"We need an MVP in app stores within two months.", "Backend is Firebase; the app needs login, a feed and push notifications."},
		hourly: 0.4,
	},
	{
		titles: []string{"DevOps engineer to set up CI/CD for %s", "Kubernetes cluster for %s workloads", "Move %s infrastructure to AWS"},
		skills: []string{"devops", "kubernetes", "terraform", "aws", "docker", "ci-cd", "linux"},
		lines:  []string{"Currently everything is deployed by hand over SSH.", "Infrastructure as code is a must."},
		hourly: 0.7,
	},
	{
		titles: []string{"WordPress site for %s", "Speed up our %s WordPress shop", "WooCommerce customisation for %s"},
		skills: []string{"wordpress", "php", "woocommerce", "seo", "css"},
		lines:  []string{"Site is slow and some plugins conflict.", "Need a clean theme and a few custom pages."},
		hourly: 0.3,
	},
	{
		titles: []string{"Machine learning model to predict %s churn", "Train a classifier on %s data", "LLM chatbot for %s support"},
		skills: []string{"python", "machine-learning", "data", "pytorch", "scikit-learn", "nlp"},
		lines:  []string{"We have two years of labelled data.", "Deliver the model, a report on its accuracy and a short handover."},
		hourly: 0.5,
	},
	{
		titles: []string{"Technical writer for %s documentation", "Write a white paper about %s", "Blog articles on %s topics"},
		skills: []string{"technical-writing", "copywriting", "report", "seo", "english"},
		lines:  []string{"Five articles of about 1500 words each.", "Audience is developers; accuracy matters more than style."},
		hourly: 0.2,
	},
	{
		titles: []string{"On-site IT support for %s office", "In-person network setup for %s", "Install and configure %s office hardware"},
		skills: []string{"it-support", "networking", "windows", "hardware", "cisco"},
		lines:  []string{"This job is in-person at our office; remote work is not possible.", "You must be able to come on-site twice a week."},
		hourly: 0.8,
	},
	{
		titles: []string{"Virtual assistant for %s", "Data entry for %s catalogue", "Customer support agent for %s"},
		skills: []string{"data-entry", "virtual-assistant", "excel", "customer-service", "english"},
		lines:  []string{"About 10 hours a week, flexible schedule.", "Daily video call at 9:00 CET to plan the day."},
		hourly: 0.9,
	},
	{
		titles: []string{"Logo and brand identity for %s", "Video editing for %s YouTube channel", "Illustrations for %s book"},
		skills: []string{"graphic-design", "illustrator", "photoshop", "video-editing", "branding"},
		lines:  []string{"Please share your portfolio.", "Three concepts, two rounds of revisions."},
		hourly: 0.2,
	},
}

var subjects = []string{
	"fintech", "e-commerce", "logistics", "healthcare", "real estate", "travel", "restaurant",
	"education", "gaming", "SaaS", "nonprofit", "marketing", "insurance", "fitness", "legal",
}

// Extras are sprinkled into descriptions so that keyword rules ("video call",
// "in-person", "deliver", "report", "urgent" ...) match some postings and not others.
var extras = []string{
	"A weekly video call is required.",
	"Must be able to meet in-person in our city once a month.",
	"Please deliver a short report at the end of each milestone.",
	"Urgent: we need this done within 48 hours.",
	"Long-term work is possible for the right person.",
	"Budget is firm; please do not bid above it.",
	"Only freelancers with proven experience, please include links.",
	"NDA required before we share details.",
	"We communicate over Slack; no phone calls.",
	"Payment on delivery of working code.",
	"Start with a small paid test task.",
	"Must overlap at least 4 hours with US Eastern time.",
}

type weighted[T any] struct {
	v T
	w int
}

var currencies = []weighted[string]{
	{"USD", 70}, {"EUR", 10}, {"GBP", 7}, {"INR", 5}, {"CAD", 4}, {"AUD", 4},
}

var countries = []weighted[string]{
	{"US", 30}, {"GB", 10}, {"DE", 8}, {"CA", 6}, {"AU", 6}, {"IN", 8}, {"FR", 4}, {"NL", 3},
	{"BR", 3}, {"PK", 3}, {"NG", 2}, {"UA", 2}, {"SG", 2}, {"AE", 3}, {"ES", 2}, {"SE", 2}, {"JP", 2}, {"RU", 1}, {"CN", 1},
}

// roughly EUR-, GBP-, INR-... per USD, so budgets in other currencies look plausible.
var perUSD = map[string]float64{"USD": 1, "EUR": 0.92, "GBP": 0.79, "INR": 83, "CAD": 1.36, "AUD": 1.52}

var fixedBudgets = []float64{30, 50, 100, 150, 250, 400, 500, 750, 1000, 1500, 2500, 5000, 10000, 25000}

func pick[T any](r *rand.Rand, xs []weighted[T]) T {
	total := 0
	for _, x := range xs {
		total += x.w
	}
	n := r.IntN(total)
	for _, x := range xs {
		if n < x.w {
			return x.v
		}
		n -= x.w
	}
	return xs[len(xs)-1].v
}

func postingID(seq uint64) string { return fmt.Sprintf("p-%06d", seq) }

// generatePosting returns the content of posting seq (1-based); the server
// adds the publication time, URL and status.
func generatePosting(seed, seq uint64) wirePosting {
	r := rand.New(rand.NewPCG(seed, seq))
	cat := categories[r.IntN(len(categories))]
	subject := subjects[r.IntN(len(subjects))]

	title := fmt.Sprintf(cat.titles[r.IntN(len(cat.titles))], subject)
	if r.IntN(8) == 0 {
		title += " (urgent)"
	}

	var desc strings.Builder
	desc.WriteString(cat.lines[r.IntN(len(cat.lines))])
	for _, i := range r.Perm(len(extras))[:r.IntN(4)] {
		desc.WriteString(" ")
		desc.WriteString(extras[i])
	}

	skills := make([]string, 0, 5)
	for _, i := range r.Perm(len(cat.skills))[:2+r.IntN(min(4, len(cat.skills)-1))] {
		skills = append(skills, cat.skills[i])
	}

	cur := pick(r, currencies)
	b := wireBudget{Type: "fixed", Currency: cur}
	if r.Float64() < cat.hourly {
		b.Type = "hourly"
		b.Min = float64(10 + 5*r.IntN(12))
		b.Max = b.Min + float64(5*r.IntN(17))
	} else {
		b.Min = fixedBudgets[r.IntN(len(fixedBudgets))]
		b.Max = b.Min * float64(1+r.IntN(4))
	}
	b.Min = roundMoney(b.Min * perUSD[cur])
	b.Max = roundMoney(b.Max * perUSD[cur])

	c := wireClient{Country: pick(r, countries)}
	if r.IntN(6) != 0 { // a sixth are new clients: no rating, no spend yet
		c.Rating = math.Round((5-math.Abs(r.NormFloat64())*0.7)*10) / 10
		c.Rating = max(1, min(5, c.Rating))
		c.TotalSpend = math.Round(math.Pow(10, 1+r.Float64()*5))
	}

	return wirePosting{
		ID:          postingID(seq),
		Title:       title,
		Description: desc.String(),
		Budget:      b,
		Skills:      skills,
		Client:      c,
	}
}

// roundMoney keeps two significant digits so converted budgets read like
// numbers a person would type (920, not 919.9999).
func roundMoney(v float64) float64 {
	if v < 100 {
		return math.Round(v)
	}
	p := math.Pow(10, math.Floor(math.Log10(v))-1)
	return math.Round(v/p) * p
}

//! The chain drawn as a graph: one `<svg>` element, laid out by `layout-rs` (a Sugiyama
//! layered layout, as Graphviz `dot`), for the HTML report and the web UI.
//!
//! Nodes are the trace's events plus the principals and credentials they name: a principal
//! initiates a request, delegates (delegation → the principal it delegated to) and acts; a
//! delegation or a secret access issues a credential, an action presents it. Recorded edges
//! are solid, inferred ones (`chain`, `same_resource`) dashed, and what the chain misses is
//! drawn as a dashed red placeholder ("missing: initiator, authority", a reference to nothing
//! stored, a credential nobody recorded issuing), so a gap is visible rather than silent.
//!
//! Every text comes from event data, which is untrusted: all of it is XML-escaped. The SVG
//! has no ids, no `href`, no script and no external reference; colours are presentation
//! attributes, so it needs no stylesheet and two graphs can share one page. The same trace
//! always gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use custody_model::{EventBody, EventKey, Principal, PrincipalKind};
use custody_store::StoredEvent;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::{EdgeKind, Link, Trace};

/// The most events drawn; a larger trace is drawn in part, and the graph says so. The
/// layout's cost grows about with the cube of the graph's size (60 events naming a dozen
/// principals and credentials: a few seconds).
pub const MAX_GRAPH_EVENTS: usize = 60;

/// Up to this many nodes, edge labels get room of their own in the layout (a label node on
/// the edge, as `dot` does); past it they are written on the edge's middle, which lays out
/// about ten times faster.
const LABEL_NODES_UP_TO: usize = 40;

/// Characters kept per label line (longer values keep their start and end around `…`).
const LINE_CHARS: usize = 44;
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif";
const HEAD_PX: f64 = 12.0;
const TEXT_PX: f64 = 11.0;
const LABEL_PX: f64 = 10.0;
const LINE_GAP: f64 = 15.0;
const MARGIN: f64 = 16.0;

/// What a node stands for; decides its shape and colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeKind {
    Human,
    Principal,
    Credential,
    Request,
    Delegation,
    Approval,
    Action,
    Effect,
    SecretAccess,
    Revocation,
    Decision,
    Missing,
    Ambiguous,
}

impl NodeKind {
    /// The class name (`cg-node cg-KIND`), so a page may restyle it.
    fn class(self) -> &'static str {
        match self {
            NodeKind::Human => "human",
            NodeKind::Principal => "principal",
            NodeKind::Credential => "credential",
            NodeKind::Request => "request",
            NodeKind::Delegation => "delegation",
            NodeKind::Approval => "approval",
            NodeKind::Action => "action",
            NodeKind::Effect => "effect",
            NodeKind::SecretAccess => "secret-access",
            NodeKind::Revocation => "revocation",
            NodeKind::Decision => "decision",
            NodeKind::Missing => "missing",
            NodeKind::Ambiguous => "ambiguous",
        }
    }

    /// (fill, stroke, text) colours.
    fn colours(self) -> (&'static str, &'static str, &'static str) {
        match self {
            NodeKind::Human => ("#e6f4ea", "#1e7b34", "#0d3d1a"),
            NodeKind::Principal => ("#e3f0fb", "#1c5fa8", "#0b2b52"),
            NodeKind::Credential => ("#fff6dc", "#a86400", "#4a2c00"),
            NodeKind::Request => ("#f5eafa", "#7b2a9e", "#3c1050"),
            NodeKind::Delegation => ("#eeeafa", "#4b3aa8", "#231a5c"),
            NodeKind::Approval => ("#e2f5f2", "#00796b", "#00382f"),
            NodeKind::Action => ("#e8ebf7", "#283593", "#111a4f"),
            NodeKind::Effect => ("#fdece6", "#b33c12", "#561a05"),
            NodeKind::SecretAccess => ("#fbf9e0", "#827717", "#3d3700"),
            NodeKind::Revocation => ("#fde8ef", "#ad1457", "#52092a"),
            NodeKind::Decision => ("#eef1f3", "#455a64", "#1d282d"),
            NodeKind::Missing => ("#fff3f3", "#d32f2f", "#a31515"),
            NodeKind::Ambiguous => ("#fff4e0", "#e65100", "#7a2b00"),
        }
    }

    fn dashed(self) -> bool {
        matches!(self, NodeKind::Missing | NodeKind::Ambiguous)
    }
}

#[derive(Clone, Debug)]
struct Node {
    kind: NodeKind,
    /// The first line is the heading; all text raw (escaped on output).
    lines: Vec<String>,
    /// The full text, shown on hover.
    title: String,
}

/// How an edge is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeStyle {
    Recorded,
    Inferred,
    Missing,
}

impl EdgeStyle {
    fn colour(self) -> &'static str {
        match self {
            EdgeStyle::Recorded => "#4f5b66",
            EdgeStyle::Inferred => "#7f8c99",
            EdgeStyle::Missing => "#d32f2f",
        }
    }

    /// The colour handed to the layout, read back when it draws an edge label.
    fn layout_colour(self) -> u32 {
        match self {
            EdgeStyle::Recorded => 0x4f5b_66ff,
            EdgeStyle::Inferred => 0x7f8c_99ff,
            EdgeStyle::Missing => 0xd32f_2fff,
        }
    }

    fn class(self) -> &'static str {
        match self {
            EdgeStyle::Recorded => "recorded",
            EdgeStyle::Inferred => "inferred",
            EdgeStyle::Missing => "missing",
        }
    }
}

#[derive(Clone, Debug)]
struct GraphEdge {
    from: usize,
    to: usize,
    labels: Vec<String>,
    style: EdgeStyle,
    /// Drawn with an arrowhead at both ends (two edges, one each way, merged).
    both_ways: bool,
}

/// The graph to draw, before layout.
#[derive(Default)]
struct Model {
    nodes: Vec<Node>,
    edges: Vec<GraphEdge>,
    events: BTreeMap<EventKey, usize>,
    principals: BTreeMap<String, usize>,
    credentials: BTreeMap<String, usize>,
    placeholders: BTreeMap<String, usize>,
    /// Events left out past [`MAX_GRAPH_EVENTS`].
    omitted: usize,
}

impl Model {
    fn add(&mut self, kind: NodeKind, lines: Vec<String>, title: String) -> usize {
        self.nodes.push(Node { kind, lines, title });
        self.nodes.len() - 1
    }

    fn principal(&mut self, p: &Principal) -> usize {
        if let Some(&i) = self.principals.get(&p.id) {
            return i;
        }
        let kind = if p.kind == PrincipalKind::Human {
            NodeKind::Human
        } else {
            NodeKind::Principal
        };
        let mut lines = vec![p.kind.as_str().to_owned()];
        match &p.name {
            Some(name) if name != &p.id => {
                lines.push(name.clone());
                lines.push(p.id.clone());
            }
            _ => lines.push(p.id.clone()),
        }
        let title = format!("{} ({})", p.id, p.kind.as_str());
        let i = self.add(kind, lines, title);
        self.principals.insert(p.id.clone(), i);
        i
    }

    fn credential(&mut self, id: &str, kind: Option<&str>) -> usize {
        if let Some(&i) = self.credentials.get(id) {
            if let (Some(k), Some(node)) = (kind, self.nodes.get_mut(i)) {
                if node.lines.len() < 3 {
                    node.lines.push(k.to_owned());
                }
            }
            return i;
        }
        let mut lines = vec!["credential".to_owned(), id.to_owned()];
        lines.extend(kind.map(str::to_owned));
        let i = self.add(NodeKind::Credential, lines, format!("credential {id}"));
        self.credentials.insert(id.to_owned(), i);
        i
    }

    /// A placeholder for something missing, shared by everything that misses the same.
    fn placeholder(&mut self, kind: NodeKind, lines: Vec<String>) -> usize {
        let key = lines.join("\n");
        if let Some(&i) = self.placeholders.get(&key) {
            return i;
        }
        let title = lines.join(": ");
        let i = self.add(kind, lines, title);
        self.placeholders.insert(key, i);
        i
    }

    /// Adds an edge; edges between the same two nodes become one, their labels joined.
    fn edge(&mut self, from: usize, to: usize, label: &str, style: EdgeStyle) {
        if from == to {
            return;
        }
        if let Some(e) = self
            .edges
            .iter_mut()
            .find(|e| (e.from, e.to) == (from, to) || (e.from, e.to) == (to, from))
        {
            if (e.from, e.to) != (from, to) {
                e.both_ways = true;
            }
            if !e.labels.iter().any(|l| l == label) {
                e.labels.push(label.to_owned());
            }
            e.style = e.style.max(style);
            return;
        }
        self.edges.push(GraphEdge {
            from,
            to,
            labels: vec![label.to_owned()],
            style,
            both_ways: false,
        });
    }
}

fn word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn event_node(e: &StoredEvent) -> (NodeKind, Vec<String>) {
    let ev = &e.event;
    let id = &ev.key.id;
    match &ev.body {
        EventBody::Request(r) => {
            let mut lines = vec![format!("request · {id}")];
            lines.extend(r.ticket.clone());
            lines.extend(r.intent.as_ref().map(|i| format!("“{i}”")));
            (NodeKind::Request, lines)
        }
        EventBody::Delegation(d) => {
            let mut lines = vec![
                format!("delegation · {id}"),
                format!("via {}", word(&d.via)),
            ];
            match &d.scope {
                Some(s) if !s.is_empty() => {
                    let mut perms =
                        s.0.iter()
                            .map(|p| format!("{} on {}", p.action, p.resource));
                    lines.extend(perms.next().map(|p| format!("scope {p}")));
                    let more = perms.count();
                    if more > 0 {
                        lines.push(format!("+{more} more permission(s)"));
                    }
                }
                _ => lines.push("no scope recorded".to_owned()),
            }
            (NodeKind::Delegation, lines)
        }
        EventBody::Approval(a) => (
            NodeKind::Approval,
            vec![format!("approval · {id}"), word(&a.decision)],
        ),
        EventBody::Action(a) => {
            let outcome = a.outcome.map(|o| format!(" · {}", word(&o)));
            (
                NodeKind::Action,
                vec![
                    format!("action · {id}{}", outcome.unwrap_or_default()),
                    a.operation.clone(),
                    a.resource.clone(),
                ],
            )
        }
        EventBody::Effect(f) => {
            let mut lines = vec![
                format!("effect · {id} · {}", word(&f.change)),
                f.resource.clone(),
            ];
            lines.extend(f.record.clone());
            (NodeKind::Effect, lines)
        }
        EventBody::SecretAccess(s) => (
            NodeKind::SecretAccess,
            vec![
                format!("secret access · {id}"),
                s.secret.clone(),
                s.manager.clone(),
            ],
        ),
        EventBody::Revocation(r) => (
            NodeKind::Revocation,
            vec![format!("revocation · {id}"), r.credential.clone()],
        ),
        EventBody::Decision(d) => {
            let proposed = |k: &str| {
                d.proposed
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_owned()
            };
            (
                NodeKind::Decision,
                vec![
                    format!("decision · {id} · {}", word(&d.decision)),
                    proposed("operation"),
                    proposed("resource"),
                ],
            )
        }
    }
}

fn edge_word(kind: EdgeKind) -> String {
    if kind.is_inferred() {
        format!("{} (inferred)", kind.as_str())
    } else {
        kind.as_str().to_owned()
    }
}

fn build(trace: &Trace) -> Model {
    let mut m = Model::default();
    let drawn: Vec<&StoredEvent> = trace.events.values().take(MAX_GRAPH_EVENTS).collect();
    m.omitted = trace.events.len().saturating_sub(drawn.len());
    for e in &drawn {
        let (kind, lines) = event_node(e);
        let title = format!(
            "{} {}  {}",
            e.key(),
            e.event.time,
            crate::render::summary(e)
        );
        let i = m.add(kind, lines, title);
        m.events.insert(e.key().clone(), i);
    }
    // Who and with what: principals and credentials, in log order.
    for e in &drawn {
        let Some(&ev) = m.events.get(e.key()) else {
            continue;
        };
        match &e.event.body {
            EventBody::Request(r) => {
                let p = m.principal(&r.initiator);
                m.edge(p, ev, "initiates", EdgeStyle::Recorded);
            }
            EventBody::Delegation(d) => {
                let from = m.principal(&d.from);
                m.edge(from, ev, "delegates", EdgeStyle::Recorded);
                let to = m.principal(&d.to);
                m.edge(ev, to, "to", EdgeStyle::Recorded);
                if let Some(c) = &d.credential {
                    let cred = m.credential(&c.id, c.kind.as_deref());
                    m.edge(ev, cred, "issues", EdgeStyle::Recorded);
                }
                if let Some(parent) = &d.parent_credential {
                    let cred = m.credential(parent, None);
                    m.edge(cred, ev, "parent credential", EdgeStyle::Recorded);
                }
            }
            EventBody::Approval(a) => {
                let p = m.principal(&a.approver);
                m.edge(p, ev, "decides", EdgeStyle::Recorded);
            }
            EventBody::Action(a) => {
                let p = m.principal(&a.actor);
                m.edge(p, ev, "acts", EdgeStyle::Recorded);
                if let Some(c) = &a.credential {
                    let cred = m.credential(c, None);
                    m.edge(cred, ev, "presented", EdgeStyle::Recorded);
                }
            }
            EventBody::SecretAccess(s) => {
                let p = m.principal(&s.principal);
                m.edge(p, ev, "reads", EdgeStyle::Recorded);
                if let Some(c) = &s.credential {
                    let cred = m.credential(c, None);
                    m.edge(ev, cred, "yields", EdgeStyle::Recorded);
                }
            }
            EventBody::Revocation(r) => {
                if let Some(by) = &r.by {
                    let p = m.principal(by);
                    m.edge(p, ev, "revokes", EdgeStyle::Recorded);
                }
                let cred = m.credential(&r.credential, None);
                m.edge(cred, ev, "revoked", EdgeStyle::Recorded);
            }
            EventBody::Effect(_) | EventBody::Decision(_) => {}
        }
    }
    // The links between events; credential links are drawn through the credential's node.
    for edge in &trace.edges {
        if matches!(edge.kind, EdgeKind::Credential | EdgeKind::ParentCredential) {
            continue;
        }
        let (Some(&from), Some(&to)) = (m.events.get(&edge.from), m.events.get(&edge.to)) else {
            continue;
        };
        let style = if edge.inferred() {
            EdgeStyle::Inferred
        } else {
            EdgeStyle::Recorded
        };
        m.edge(from, to, &edge_word(edge.kind), style);
    }
    // The gaps.
    for d in &trace.dangling {
        let Some(&ev) = m.events.get(&d.event) else {
            continue;
        };
        if d.field == "credential" || d.field == "parent_credential" {
            let cred = m.credential(&d.target, None);
            let gap = m.placeholder(
                NodeKind::Missing,
                vec![
                    "missing: issuance".to_owned(),
                    format!("of credential {}", d.target),
                    "not in the log".to_owned(),
                ],
            );
            m.edge(gap, cred, "not recorded", EdgeStyle::Missing);
        } else {
            let gap = m.placeholder(
                NodeKind::Missing,
                vec![
                    format!("missing: {}", d.field),
                    d.target.clone(),
                    "not in the log".to_owned(),
                ],
            );
            m.edge(gap, ev, d.field.as_str(), EdgeStyle::Missing);
        }
    }
    for c in &trace.actions {
        let Some(&ev) = m.events.get(&c.action) else {
            continue;
        };
        let above: Vec<&str> = c
            .missing
            .iter()
            .filter(|l| matches!(l, Link::Initiator | Link::Authority | Link::Context))
            .map(|l| l.as_str())
            .collect();
        if !above.is_empty() {
            let mut lines = vec![format!("missing: {}", above.join(", "))];
            if c.missing.contains(&Link::Initiator) {
                lines.push("no human request or delegation above".to_owned());
            }
            if c.missing.contains(&Link::Authority) {
                lines.push("no scoped delegation chain from a human".to_owned());
            }
            if c.missing.contains(&Link::Context) {
                lines.push("actor, credential, operation or resource unnamed".to_owned());
            }
            let gap = m.placeholder(NodeKind::Missing, lines);
            m.edge(gap, ev, "gap", EdgeStyle::Missing);
        }
        if c.missing.contains(&Link::Impact) {
            let gap = m.placeholder(
                NodeKind::Missing,
                vec![
                    "missing: impact".to_owned(),
                    "no effect recorded".to_owned(),
                ],
            );
            m.edge(ev, gap, "gap", EdgeStyle::Missing);
        }
    }
    if trace.actions.is_empty() {
        if let Some(&first) = m.events.values().min() {
            let gap = m.placeholder(
                NodeKind::Missing,
                vec![
                    "missing: context".to_owned(),
                    "no action in this chain".to_owned(),
                ],
            );
            m.edge(first, gap, "gap", EdgeStyle::Missing);
        }
    }
    for a in &trace.ambiguities {
        let Some(&ev) = m.events.get(&a.event) else {
            continue;
        };
        let gap = m.placeholder(
            NodeKind::Ambiguous,
            vec![
                format!("ambiguous: {}", a.link),
                format!("{} candidates for {}", a.candidates.len(), a.event.id),
            ],
        );
        m.edge(gap, ev, "unresolved", EdgeStyle::Missing);
    }
    m
}

/// Keeps the start and the end of a long value around an ellipsis.
fn shorten(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let n = text.chars().count();
    if n <= LINE_CHARS {
        return text;
    }
    let head = LINE_CHARS * 2 / 5;
    let tail = LINE_CHARS - head - 1;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// XML-escapes text for element content and attribute values.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Characters XML 1.0 forbids.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The size of a node's box for its lines.
fn node_size(lines: &[String]) -> (f64, f64) {
    let width = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            // Per character: DejaVu Sans averages about 0.6 em, capitals 0.7 em.
            let em = if i == 0 { HEAD_PX * 1.08 } else { TEXT_PX };
            l.chars()
                .map(|c| if c.is_uppercase() { 0.72 } else { 0.6 })
                .sum::<f64>()
                * em
        })
        .fold(0.0, f64::max);
    (
        // Room for the slant of a credential's card and the cut corners of the others.
        (width + 34.0).max(90.0).round(),
        (lines.len() as f64 * LINE_GAP + 14.0).round(),
    )
}

/// A shape to draw, found by the layout.
struct Placed {
    node: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

struct Route {
    edge: usize,
    path: Vec<(Point, Point)>,
    heads: (bool, bool),
}

struct EdgeLabel {
    x: f64,
    y: f64,
    text: String,
    colour: String,
}

/// The rendering backend handed to the layout: it records where things go; the SVG is
/// written afterwards from the model, so that every text is escaped by us.
#[derive(Default)]
struct Recorder {
    shapes: Vec<Placed>,
    routes: Vec<Route>,
    labels: Vec<EdgeLabel>,
}

fn tag(properties: Option<String>, prefix: char) -> Option<usize> {
    properties?.strip_prefix(prefix)?.parse().ok()
}

impl RenderBackend for Recorder {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        if let Some(node) = tag(properties, 'n') {
            self.shapes.push(Placed {
                node,
                x: xy.x,
                y: xy.y,
                w: size.x,
                h: size.y,
            });
        }
    }

    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        // Node boxes carry no text of their own: any text is an edge label.
        if !text.is_empty() {
            self.labels.push(EdgeLabel {
                x: xy.x,
                y: xy.y,
                text: text.to_owned(),
                colour: look.line_color.to_web_color(),
            });
        }
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        head: (bool, bool),
        _look: &StyleAttr,
        properties: Option<String>,
        _text: &str,
    ) {
        if let Some(edge) = tag(properties, 'e') {
            self.routes.push(Route {
                edge,
                path: path.to_vec(),
                heads: head,
            });
        }
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

fn layout(model: &Model) -> Option<Recorder> {
    let label_nodes = model.nodes.len() <= LABEL_NODES_UP_TO;
    let dir = Orientation::TopToBottom;
    let mut vg = VisualGraph::new(dir);
    // The layout checks the whole graph after every edge when validating: quadratic.
    vg.dag.set_validate(false);
    let mut handles = Vec::with_capacity(model.nodes.len());
    for (i, node) in model.nodes.iter().enumerate() {
        let lines: Vec<String> = node.lines.iter().map(|l| shorten(l)).collect();
        let (w, h) = node_size(&lines);
        let element = Element::create_with_properties(
            ShapeKind::Box(String::new()),
            StyleAttr::simple(),
            dir,
            Point::new(w, h),
            format!("n{i}"),
        );
        handles.push(vg.add_node(element));
    }
    for (i, edge) in model.edges.iter().enumerate() {
        let (Some(&from), Some(&to)) = (handles.get(edge.from), handles.get(edge.to)) else {
            continue;
        };
        let look = StyleAttr::new(
            Color::new(edge.style.layout_colour()),
            1,
            None,
            0,
            LABEL_PX as usize,
        );
        let line = if edge.style == EdgeStyle::Recorded {
            LineStyleKind::Normal
        } else {
            LineStyleKind::Dashed
        };
        let start = if edge.both_ways {
            LineEndKind::Arrow
        } else {
            LineEndKind::None
        };
        let text = if label_nodes {
            edge.labels.join(", ")
        } else {
            String::new()
        };
        let mut arrow = Arrow::new(start, LineEndKind::Arrow, line, &text, &look, &None, &None);
        arrow.properties = Some(format!("e{i}"));
        vg.add_edge(arrow, from, to);
    }
    let mut recorder = Recorder::default();
    // The layout asserts its invariants; a graph it cannot place is drawn without it
    // rather than failing the report.
    let placed = catch_unwind(AssertUnwindSafe(|| {
        vg.do_it(false, false, false, &mut recorder);
    }));
    if placed.is_err() || recorder.shapes.len() != model.nodes.len() {
        return None;
    }
    if !label_nodes {
        let labels: Vec<EdgeLabel> = recorder
            .routes
            .iter()
            .filter_map(|r| {
                let edge = model.edges.get(r.edge)?;
                let (x, y) = middle(&r.path)?;
                Some(EdgeLabel {
                    x,
                    y,
                    text: edge.labels.join(", "),
                    colour: Color::new(edge.style.layout_colour()).to_web_color(),
                })
            })
            .collect();
        recorder.labels = labels;
    }
    Some(recorder)
}

/// The middle of a routed edge: the on-curve point halfway along a path through several
/// ranks, else the middle of its one cubic segment.
fn middle(path: &[(Point, Point)]) -> Option<(f64, f64)> {
    if path.len() > 2 {
        let p = path.get(path.len() / 2)?.1;
        return Some((p.x, p.y));
    }
    let (p0, c1) = *path.first()?;
    let (c2, p3) = *path.get(1)?;
    Some((
        (p0.x + 3.0 * c1.x + 3.0 * c2.x + p3.x) / 8.0,
        (p0.y + 3.0 * c1.y + 3.0 * c2.y + p3.y) / 8.0,
    ))
}

/// A column, for a graph the layout refused: every node is still shown.
fn fallback(model: &Model) -> Recorder {
    let mut r = Recorder::default();
    let mut y = 0.0;
    for (i, node) in model.nodes.iter().enumerate() {
        let lines: Vec<String> = node.lines.iter().map(|l| shorten(l)).collect();
        let (w, h) = node_size(&lines);
        r.shapes.push(Placed {
            node: i,
            x: -w / 2.0,
            y,
            w,
            h,
        });
        y += h + 24.0;
    }
    r
}

fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn shape_svg(out: &mut String, kind: NodeKind, x: f64, y: f64, w: f64, h: f64) {
    let (fill, stroke, _) = kind.colours();
    let dash = if kind.dashed() {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let paint = format!("fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.6\"{dash}");
    let poly = |pts: &[(f64, f64)]| {
        let p: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{},{}", num(*a), num(*b)))
            .collect();
        format!("<polygon points=\"{}\" {paint}/>", p.join(" "))
    };
    let (r, b) = (x + w, y + h);
    let s = match kind {
        // People: a pill.
        NodeKind::Human => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" {paint}/>",
            num(x),
            num(y),
            num(w),
            num(h),
            num(h / 2.0)
        ),
        // Machine identities: a cut-corner box.
        NodeKind::Principal => {
            let c = 10.0_f64.min(h / 3.0);
            poly(&[
                (x + c, y),
                (r - c, y),
                (r, y + c),
                (r, b - c),
                (r - c, b),
                (x + c, b),
                (x, b - c),
                (x, y + c),
            ])
        }
        // Credentials: a slanted card.
        NodeKind::Credential => {
            let s = 9.0;
            poly(&[(x + s, y), (r, y), (r - s, b), (x, b)])
        }
        // Effects: a page with a folded corner.
        NodeKind::Effect => {
            let c = 12.0;
            poly(&[(x, y), (r - c, y), (r, y + c), (r, b), (x, b)])
        }
        // Actions: a square box with a heavy edge.
        NodeKind::Action => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2.4\"/>",
            num(x),
            num(y),
            num(w),
            num(h)
        ),
        _ => format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" {paint}/>",
            num(x),
            num(y),
            num(w),
            num(h)
        ),
    };
    out.push_str(&s);
}

fn arrowhead(tip: Point, from: Point, colour: &str) -> String {
    let (dx, dy) = (tip.x - from.x, tip.y - from.y);
    let len = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = if len > 1e-6 {
        (dx / len, dy / len)
    } else {
        (0.0, 1.0)
    };
    let (l, w) = (9.0, 4.0);
    let (bx, by) = (tip.x - ux * l, tip.y - uy * l);
    format!(
        "<polygon points=\"{},{} {},{} {},{}\" fill=\"{colour}\"/>",
        num(tip.x),
        num(tip.y),
        num(bx - uy * w),
        num(by + ux * w),
        num(bx + uy * w),
        num(by - ux * w)
    )
}

/// The chain of `trace` as one standalone `<svg>` element (no XML prolog, no page
/// around it): principals, credentials and events as labelled nodes, recorded edges solid,
/// inferred edges dashed, missing links as dashed red placeholders. Laid out by
/// `layout-rs`; every text escaped; deterministic. It scales to its container's width
/// (`width="100%"`, with a `viewBox`).
pub fn chain_svg(trace: &Trace) -> String {
    let model = build(trace);
    let title = format!("Chain of {}", trace.start);
    if model.nodes.is_empty() {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"custody-chain\" role=\"img\" viewBox=\"0 0 320 40\" width=\"320\" height=\"40\"><title>{}</title><text x=\"10\" y=\"24\" font-family=\"{FONT}\" font-size=\"13\">no events</text></svg>",
            escape_xml(&title)
        );
    }
    let drawn = layout(&model);
    let laid_out = drawn.is_some();
    let rec = drawn.unwrap_or_else(|| fallback(&model));

    // The bounds of everything drawn.
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    let mut grow = |x: f64, y: f64| {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    };
    for s in &rec.shapes {
        grow(s.x, s.y);
        grow(s.x + s.w, s.y + s.h);
    }
    for r in &rec.routes {
        for (a, b) in &r.path {
            grow(a.x, a.y);
            grow(b.x, b.y);
        }
    }
    for l in &rec.labels {
        let half = l.text.chars().count() as f64 * LABEL_PX * 0.3 + 4.0;
        grow(l.x - half, l.y - LABEL_PX);
        grow(l.x + half, l.y + LABEL_PX);
    }
    let notes: Vec<String> = [
        (model.omitted > 0).then(|| {
            format!(
                "The graph shows the first {MAX_GRAPH_EVENTS} events of {}; the table lists them all.",
                model.omitted + MAX_GRAPH_EVENTS
            )
        }),
        (!laid_out).then(|| "The layout could not place this graph; nodes are listed in a column.".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let top = if notes.is_empty() {
        0.0
    } else {
        notes.len() as f64 * 16.0 + 6.0
    };
    let (dx, dy) = (MARGIN - x0, MARGIN - y0 + top);
    let width = (x1 - x0 + 2.0 * MARGIN).max(120.0);
    let height = (y1 - y0 + 2.0 * MARGIN + top).max(40.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"custody-chain\" role=\"img\" viewBox=\"0 0 {w} {h}\" width=\"100%\" style=\"max-width:{w}px;height:auto\" font-family=\"{FONT}\">",
        w = num(width),
        h = num(height),
    );
    let _ = write!(out, "<title>{}</title>", escape_xml(&title));
    for (i, note) in notes.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#a31515\">{}</text>",
            num(MARGIN),
            num(MARGIN + 12.0 + i as f64 * 16.0),
            escape_xml(note)
        );
    }
    let _ = write!(out, "<g transform=\"translate({} {})\">", num(dx), num(dy));
    // Edges first, under the nodes.
    out.push_str("<g class=\"cg-edges\" fill=\"none\">");
    for r in &rec.routes {
        let Some(edge) = model.edges.get(r.edge) else {
            continue;
        };
        let (Some(first), Some(second)) = (r.path.first(), r.path.get(1)) else {
            continue;
        };
        let mut d = format!(
            "M {} {} C {} {}, {} {}, {} {}",
            num(first.0.x),
            num(first.0.y),
            num(first.1.x),
            num(first.1.y),
            num(second.0.x),
            num(second.0.y),
            num(second.1.x),
            num(second.1.y)
        );
        for p in r.path.iter().skip(2) {
            let _ = write!(
                d,
                " S {} {}, {} {}",
                num(p.0.x),
                num(p.0.y),
                num(p.1.x),
                num(p.1.y)
            );
        }
        let colour = edge.style.colour();
        let dash = match edge.style {
            EdgeStyle::Recorded => "",
            EdgeStyle::Inferred => " stroke-dasharray=\"7 5\"",
            EdgeStyle::Missing => " stroke-dasharray=\"5 4\"",
        };
        let _ = write!(
            out,
            "<g class=\"cg-edge cg-{}\"><title>{}</title><path d=\"{d}\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash}/>",
            edge.style.class(),
            escape_xml(&edge.labels.join(", "))
        );
        if let Some(last) = r.path.last() {
            if r.heads.1 {
                out.push_str(&arrowhead(last.1, last.0, colour));
            }
        }
        if r.heads.0 {
            out.push_str(&arrowhead(first.0, first.1, colour));
        }
        out.push_str("</g>");
    }
    out.push_str("</g>");
    // Edge labels, with a white halo so that they stay legible over lines.
    out.push_str(
        "<g class=\"cg-edge-labels\" text-anchor=\"middle\" dominant-baseline=\"central\">",
    );
    for l in &rec.labels {
        let colour = [EdgeStyle::Recorded, EdgeStyle::Inferred, EdgeStyle::Missing]
            .into_iter()
            .find(|s| Color::new(s.layout_colour()).to_web_color() == l.colour)
            .unwrap_or(EdgeStyle::Recorded)
            .colour();
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{colour}\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\" stroke-linejoin=\"round\">{}</text>",
            num(l.x),
            num(l.y),
            num(LABEL_PX),
            escape_xml(&l.text)
        );
    }
    out.push_str("</g>");
    // Nodes.
    out.push_str("<g class=\"cg-nodes\">");
    let mut shapes: Vec<&Placed> = rec.shapes.iter().collect();
    shapes.sort_by_key(|s| s.node);
    for s in shapes {
        let Some(node) = model.nodes.get(s.node) else {
            continue;
        };
        let (_, _, ink) = node.kind.colours();
        let _ = write!(
            out,
            "<g class=\"cg-node cg-{}\"><title>{}</title>",
            node.kind.class(),
            escape_xml(&node.title)
        );
        shape_svg(&mut out, node.kind, s.x, s.y, s.w, s.h);
        let cx = s.x + s.w / 2.0;
        for (i, line) in node.lines.iter().enumerate() {
            let y = s.y + 7.0 + LINE_GAP * (i as f64 + 0.5);
            let (size, weight) = if i == 0 {
                (HEAD_PX, " font-weight=\"600\"")
            } else {
                (TEXT_PX, "")
            };
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" font-size=\"{}\"{weight} fill=\"{ink}\" text-anchor=\"middle\" dominant-baseline=\"central\">{}</text>",
                num(cx),
                num(y),
                num(size),
                escape_xml(&shorten(line))
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</g></g></svg>");
    out
}

/// One line describing an event (the text tree's wording): for tables beside the graph.
pub fn event_summary(event: &StoredEvent) -> String {
    crate::render::summary(event)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::LinkConfig;
    use custody_ingest::Preparer;
    use custody_model::Redactor;
    use custody_store::{Ledger, LineOrigin, NewEvent};
    use custody_store_sqlite::SqliteStore;

    fn store_of(lines: &[&str]) -> Ledger {
        let store = SqliteStore::open_in_memory().unwrap();
        let signer = custody_merkle::NoteSigner::generate("t/log", [7u8; 32]).unwrap();
        let mut ledger = Ledger::new(Box::new(store), signer, "t/log");
        let preparer = Preparer::new(Redactor::new(b"k"));
        let events: Vec<NewEvent> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let origin = LineOrigin {
                    file: "t".into(),
                    line: i as u64 + 1,
                };
                preparer.prepare_line(l, origin).unwrap()
            })
            .collect();
        ledger.append(&events, &[]).unwrap();
        ledger
    }

    fn story4() -> Ledger {
        let text = include_str!("../../../examples/04-leaked-secret.ndjson");
        let lines: Vec<&str> = text.lines().collect();
        store_of(&lines)
    }

    #[test]
    fn the_leaked_key_chain_is_drawn_with_its_gaps() {
        let store = story4();
        let trace = Trace::of_event(
            store.store(),
            "aws:cloudtrail:123456789012#s4-act-7",
            &LinkConfig::default(),
        )
        .unwrap();
        let svg = chain_svg(&trace);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        for want in [
            "action · s4-act-7",
            "AKIAZ7BACKUP2EXAMPLE",
            "credential",
            "missing: initiator, authority",
            "cg-missing",
            "cg-principal",
            "cg-credential",
            "cg-effect",
            "stroke-dasharray",
        ] {
            assert!(svg.contains(want), "no `{want}` in {svg}");
        }
        assert!(!svg.contains("href"), "{svg}");
        assert!(!svg.contains(" id="), "{svg}");
        // Laid out, not the fallback column.
        assert!(!svg.contains("could not place"), "{svg}");
        // Deterministic.
        assert_eq!(svg, chain_svg(&trace));
    }

    #[test]
    fn hostile_labels_are_escaped() {
        let store = store_of(&[
            r#"{"id":"x1","type":"request","time":"2026-01-01T00:00:00Z","source":"s","initiator":{"id":"<script>alert(1)</script>","kind":"human"},"intent":"a \"quoted\" & <b>bold</b> ' intent"}"#,
            r#"{"id":"x2","type":"action","time":"2026-01-01T00:00:01Z","source":"s","parents":["x1"],"actor":{"id":"bot","kind":"agent"},"credential":"c</text><script>","operation":"op","resource":"r"}"#,
        ]);
        let trace = Trace::of_event(store.store(), "s#x2", &LinkConfig::default()).unwrap();
        let svg = chain_svg(&trace);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("&quot;quoted&quot; &amp;"), "{svg}");
        // The credential nobody issued is a visible gap.
        assert!(svg.contains("missing: issuance"), "{svg}");
    }

    #[test]
    fn inferred_edges_are_dashed_and_labelled() {
        let store = store_of(&[
            r#"{"id":"r1","type":"request","time":"2026-01-01T00:00:00Z","source":"s","chain":"k","initiator":{"id":"ann","kind":"human"}}"#,
            r#"{"id":"a1","type":"action","time":"2026-01-01T00:00:01Z","source":"s","chain":"k","actor":{"id":"bot","kind":"agent"},"credential":"c1","operation":"write","resource":"db/t"}"#,
            r#"{"id":"e1","type":"effect","time":"2026-01-01T00:00:02Z","source":"db","system":"db","resource":"db/t","change":"updated"}"#,
        ]);
        let trace = Trace::of_event(store.store(), "s#a1", &LinkConfig::default()).unwrap();
        let svg = chain_svg(&trace);
        assert!(svg.contains("same_resource (inferred)"), "{svg}");
        assert!(svg.contains("cg-edge cg-inferred"), "{svg}");
        assert!(svg.contains("stroke-dasharray=\"7 5\""), "{svg}");
    }

    #[test]
    fn long_values_keep_both_ends() {
        let s = shorten("arn:aws:iam::123456789012:role/a-very-long-role-name/session-name-here");
        assert!(s.chars().count() <= LINE_CHARS, "{s}");
        assert!(
            s.starts_with("arn:aws:iam") && s.ends_with("name-here"),
            "{s}"
        );
        assert_eq!(escape_xml("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&#39; ");
    }

    #[test]
    fn a_large_chain_is_capped_and_still_laid_out() {
        let mut lines = vec![
            r#"{"id":"r0","type":"request","time":"2026-01-01T00:00:00Z","source":"s","initiator":{"id":"ann","kind":"human"}}"#.to_owned(),
        ];
        for i in 1..90 {
            lines.push(format!(
                r#"{{"id":"a{i}","type":"action","time":"2026-01-01T00:{:02}:{:02}Z","source":"s","parents":["{}"],"actor":{{"id":"bot{}","kind":"agent"}},"credential":"c{}","operation":"read","resource":"r{i}","mutating":false}}"#,
                i / 60,
                i % 60,
                if i == 1 { "r0".to_owned() } else { format!("a{}", i / 2) },
                i % 7,
                i % 5,
            ));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let store = store_of(&refs);
        let trace = Trace::of_event(store.store(), "s#r0", &LinkConfig::default()).unwrap();
        assert_eq!(trace.events.len(), 90);
        let svg = chain_svg(&trace);
        assert!(svg.contains("first 60 events of 90"), "{}", &svg[..400]);
        // Labels written on the edges' middles.
        assert!(svg.contains(">presented<"), "{}", &svg[..400]);
        assert!(!svg.contains("could not place"));
    }
}

// MathJax 3 configuration for pymdownx.arithmatex (generic mode).
// Must load before the MathJax script listed after it in mkdocs.yml.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "none"
  },
  options: {
    // Typeset only what arithmatex marked as maths; leave code blocks and prose alone.
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

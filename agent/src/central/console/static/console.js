/* global document -- a browser module */
// Placeholder for the console's front end (replaced by the pages of issue #16).
document.getElementById('app')?.setAttribute('data-ready', 'true');

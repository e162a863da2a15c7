"""Face maths: landmark index tables and geometry, the canonical frame, head-pose placement,
expression controls and their keyframes, face tracking (mediapipe) and the human-face check."""

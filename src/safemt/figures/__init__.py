"""safemt.figures"""
